package builtins

import (
	"context"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"k8s.io/client-go/tools/clientcmd"
)

// TestOneNamespaceRule: a built-in called without namespace= gets the
// client's namespace (here -n), whichever package declares it.
func TestOneNamespaceRule(t *testing.T) {
	var seen string
	specs := []*engine.Spec{{Name: "probe_ns", Params: []engine.Param{{Name: "namespace", Type: "string"}}, Effect: engine.Read,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			seen = c.Args.String("namespace")
			return nil, nil
		}}}
	cfg := Config{Namespace: "shop", Overrides: &clientcmd.ConfigOverrides{}}
	defaultNamespace(specs, cfg.Clients())
	specs[0].Run(context.Background(), &engine.Call{Spec: specs[0], Args: engine.Args{}})
	if seen != "shop" {
		t.Fatalf("namespace %q; want the client's, shop", seen)
	}
	specs[0].Run(context.Background(), &engine.Call{Spec: specs[0], Args: engine.Args{"namespace": "other"}})
	if seen != "other" {
		t.Fatalf("namespace %q; want the one given", seen)
	}
	for _, s := range All(cfg) {
		for _, p := range s.Params {
			if p.Name == "namespace" && p.Default != nil && p.Default != "" {
				t.Errorf("%s: namespace defaults to %v; the rule is the client's namespace", s.Name, p.Default)
			}
		}
	}
}
