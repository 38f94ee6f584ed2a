// Package builtins assembles kdiag's built-ins from the packages that
// declare them: std (sleep, now), kube (the cluster), cri (find_pid) and
// node (namespaces, probes, ptrace, the container's view).
package builtins

import (
	"context"
	"os"
	"sort"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
)

// Config carries what the built-ins need to reach the cluster and the
// node. Nothing is connected until a built-in runs, so a replay never
// builds a client.
type Config struct {
	Kubeconfig      string
	Context         string
	Namespace       string
	RuntimeEndpoint string
}

// clients returns the lazily-connecting Kubernetes clients of cfg.
func (cfg Config) clients() kube.Clients {
	return kube.NewClients(cfg.Kubeconfig, cfg.Context, cfg.Namespace)
}

// All returns every built-in: the standard ones, then the cluster's, the
// CRI's and the node's.
func All(cfg Config) []*engine.Spec {
	var specs []*engine.Spec
	specs = append(specs, std.Specs()...)
	specs = append(specs, kube.Specs(cfg.clients())...)
	specs = append(specs, cri.Specs(func() string { return cfg.RuntimeEndpoint })...)
	specs = append(specs, node.Specs()...)
	specs = append(specs, node.StraceSpec())
	return specs
}

// Preflight checks, before a run starts, that the current user may do
// what the runbook's Kubernetes built-ins need, with one
// SelfSubjectAccessReview per permission; a denial names the verb, the
// resource and the Role rule to add. Runbooks that call no Kubernetes
// built-in connect to nothing. The namespace is the runbook's "namespace"
// param when it has one.
func Preflight(ctx context.Context, cfg Config, rb *engine.Runbook, params map[string]any) error {
	if os.Getenv("KDIAG_NO_PREFLIGHT") == "1" {
		return nil
	}
	ns := cfg.Namespace
	if v, ok := params["namespace"].(string); ok && v != "" {
		ns = v
	}
	var names []string
	for _, eff := range []engine.Effect{engine.Read, engine.Write} {
		names = append(names, rb.Builtins[eff]...)
	}
	sort.Strings(names)
	var needs []kube.Need
	for _, n := range names {
		needs = append(needs, kube.Needs(n, ns)...)
	}
	if len(needs) == 0 {
		return nil
	}
	return kube.Preflight(ctx, cfg.clients(), needs)
}
