package playbook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// The mutation policies a route may have.
const (
	// MutationsNever refuses every write built-in (no Approver).
	MutationsNever = "never"
	// MutationsDryRun plans write built-ins that can plan and refuses the
	// others; nothing is sent to the cluster.
	MutationsDryRun = "dry-run"
	// MutationsAllow applies the write built-ins listed in allow_builtins
	// and refuses the others.
	MutationsAllow = "allow"
)

// Policy is a route's mutation policy as a run carries it.
type Policy struct {
	Route         string   `json:"route"`
	Mutations     string   `json:"mutations"`
	AllowBuiltins []string `json:"allow_builtins,omitempty"`
}

// DryRun returns the engine's dry-run mode for the policy.
func (p Policy) DryRun() engine.DryRun {
	if p.Mutations == MutationsDryRun {
		return engine.DryRunClient
	}
	return engine.DryRunNone
}

// Approver returns the engine Approver for the policy: nil (every write
// refused) for never and dry-run, an allow-list for allow.
func (p Policy) Approver() engine.Approver {
	if p.Mutations != MutationsAllow {
		return nil
	}
	return allowList(p)
}

// allowList approves only the write built-ins its policy lists.
type allowList Policy

// Approve implements engine.Approver.
func (a allowList) Approve(_ context.Context, req engine.Approval) error {
	if slices.Contains(a.AllowBuiltins, req.Builtin) {
		return nil
	}
	return fmt.Errorf("route %q allows only %s", a.Route, strings.Join(a.AllowBuiltins, ", "))
}

// MayWrite says which write built-ins a run under the policy can really
// send, for the RBAC preflight: none under never and dry-run, the listed
// ones under allow.
func (p Policy) MayWrite(builtin string) bool {
	return p.Mutations == MutationsAllow && slices.Contains(p.AllowBuiltins, builtin)
}
