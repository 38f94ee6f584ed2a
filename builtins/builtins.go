// Package builtins assembles kdiag's built-ins from the packages that
// declare them: std (sleep, now), kube (the cluster), cri (find_pid) and
// node (namespaces, probes, ptrace, the container's view). Where find_pid
// and the node built-ins run — on this machine or in an agent pod on the
// pod's node — is Config.NodeMode (package agent).
package builtins

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
	"k8s.io/client-go/tools/clientcmd"
)

// Config carries what the built-ins need to reach the cluster and the
// node. Nothing is connected until a built-in runs, so a replay never
// builds a client.
type Config struct {
	Kubeconfig      string
	Context         string
	Namespace       string
	RuntimeEndpoint string
	// EnvRuntimeEndpoint is kdiag's $CONTAINER_RUNTIME_ENDPOINT, below
	// RuntimeEndpoint in precedence (kdiag's command line reads it).
	EnvRuntimeEndpoint string
	// NodeMode is where find_pid and the node built-ins run: "local",
	// "agent" (in an agent pod on the pod's node) or "auto" (local on the
	// pod's node, else agent); "" is auto. See package agent.
	NodeMode string
	// AgentImage is the agent pod's image, an image of this kdiag; "" is
	// agent.DefaultImage() (kdiag's command line fills it from
	// $KDIAG_AGENT_IMAGE, else agent.Image of its version).
	AgentImage string
	// AgentNamespace is where agent pods are created; "" is the namespace
	// of the pod whose node they serve.
	AgentNamespace string
	// DebugImage is attach_ephemeral's default image; "" is
	// kube.DefaultDebugImage (kdiag's command line fills it from
	// $KDIAG_DEBUG_IMAGE).
	DebugImage string
	// SkipPreflight makes Preflight check nothing (kdiag's command line
	// sets it when $KDIAG_NO_PREFLIGHT is 1).
	SkipPreflight bool
	// Overrides are kubectl's other connection flags (--as, --as-group,
	// --user, --cluster, --token, --server, --request-timeout, ...), as
	// clientcmd.BindOverrideFlags fills them; Context and Namespace above
	// take precedence over their fields.
	Overrides *clientcmd.ConfigOverrides
}

// Clients returns the lazily-connecting Kubernetes clients of cfg.
func (cfg Config) Clients() kube.Clients {
	var o clientcmd.ConfigOverrides
	if cfg.Overrides != nil {
		o = *cfg.Overrides
	}
	if cfg.Context != "" {
		o.CurrentContext = cfg.Context
	}
	if cfg.Namespace != "" {
		o.Context.Namespace = cfg.Namespace
	}
	return kube.WithDebugImage(kube.NewClientsWithOverrides(cfg.Kubeconfig, o), cfg.DebugImage)
}

// All returns every built-in: the standard ones, then the cluster's, the
// CRI's and the node's. A node agent pod is deleted at the end of the run
// that created it (runs sharing the built-ins make new ones as needed). An
// invalid NodeMode is taken as local (the CLI validates it).
func All(cfg Config) []*engine.Spec {
	specs := all(cfg)
	defaultNamespace(specs, cfg.Clients())
	kube.ApplyRequestTimeout(specs, cfg.requestTimeout())
	engine.AddTimeoutParams(specs)
	return specs
}

// requestTimeout is --request-timeout as a duration (0: not given).
func (cfg Config) requestTimeout() time.Duration {
	if cfg.Overrides == nil || cfg.Overrides.Timeout == "" {
		return 0
	}
	t := cfg.Overrides.Timeout
	if d, err := time.ParseDuration(t); err == nil {
		return d
	}
	if n, err := strconv.Atoi(t); err == nil {
		return time.Duration(n) * time.Second
	}
	return 0
}

func all(cfg Config) []*engine.Spec {
	var specs []*engine.Spec
	clients := cfg.Clients()
	endpoint := func() cri.Endpoints { return cri.Endpoints{Flag: cfg.RuntimeEndpoint, Env: cfg.EnvRuntimeEndpoint} }
	specs = append(specs, std.Specs()...)
	specs = append(specs, kube.Specs(clients)...)
	mode, err := agent.ParseMode(cfg.NodeMode)
	if err != nil || mode == agent.ModeLocal {
		specs = append(specs, cri.Specs(endpoint)...)
		specs = append(specs, node.Specs()...)
		return append(specs, trace.Spec())
	}
	r := agent.New(agent.Options{
		Mode: mode, Clients: clients, Image: cfg.AgentImage, Namespace: cfg.AgentNamespace, Endpoints: endpoint,
	})
	return append(specs, r.Specs()...)
}

// Preflight checks, before a run starts, that the current user may do
// what the runbook's Kubernetes built-ins need, with one
// SelfSubjectAccessReview per permission (with NodeMode agent, also what
// the node agent needs: see agent.Needs); a denial names the verb, the
// resource and the Role rule to add. Runbooks that call no Kubernetes
// built-in connect to nothing. The namespace is the runbook's "namespace"
// param when it has one. mayWrite says which write built-ins can really be
// sent (not refused, not only planned client-side); nil means all of them.
func Preflight(ctx context.Context, cfg Config, rb *engine.Runbook, params map[string]any, mayWrite func(builtin string) bool) error {
	if cfg.SkipPreflight {
		return nil
	}
	ns := cfg.Namespace
	if v, ok := params["namespace"].(string); ok && v != "" {
		ns = v
	}
	names := append([]string{}, rb.Builtins[engine.Read]...)
	for _, n := range rb.Builtins[engine.Write] {
		if mayWrite == nil || mayWrite(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	mode, _ := agent.ParseMode(cfg.NodeMode)
	var needs []kube.Need
	for _, n := range names {
		needs = append(needs, kube.Needs(n, ns)...)
		needs = append(needs, agent.Needs(mode, n, ns, cfg.AgentNamespace)...)
	}
	if len(needs) == 0 {
		return nil
	}
	clients := cfg.Clients()
	pctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	err := kube.Preflight(pctx, clients, needs)
	if err != nil && kube.NoAnswer(pctx, err) && ctx.Err() == nil {
		host := "?"
		if _, rc, cerr := clients.Kube(); cerr == nil {
			host = rc.Host
		}
		why := "within " + preflightTimeout.String()
		if !errors.Is(pctx.Err(), context.DeadlineExceeded) {
			why = "(" + kube.Reason(err) + ")"
		}
		return engine.Wrapf(engine.KindUnavailable, err, "rbac: the API server at %s did not answer the permission check %s; check the control plane (kubectl get --raw /readyz), or skip the check with KDIAG_NO_PREFLIGHT=1", host, why)
	}
	return err
}

// preflightTimeout bounds the RBAC preflight, which a hung API server
// would otherwise hold until the run's deadline.
const preflightTimeout = 20 * time.Second

// defaultNamespace applies one rule to every built-in with a namespace
// argument: a call that names none means the client's namespace (-n,
// else the kubeconfig context's, else "default"), as kubectl does.
func defaultNamespace(specs []*engine.Spec, clients kube.Clients) {
	for _, s := range specs {
		if !slices.ContainsFunc(s.Params, func(p engine.Param) bool { return p.Name == "namespace" }) {
			continue
		}
		run := s.Run
		s.Run = func(ctx context.Context, c *engine.Call) (any, error) {
			if c.Args.String("namespace") == "" {
				c.Args["namespace"] = clients.Namespace()
			}
			return run(ctx, c)
		}
	}
}
