// Package engine runs kdiag runbooks: it loads a Starlark runbook and its
// modules, calls built-ins through one wrapper that records every call to a
// transcript, and replays transcripts without a cluster.
//
// The engine knows nothing of Kubernetes or Linux: built-ins are declared as
// Specs by the packages under builtins/ and handed to the engine.
package engine

import (
	"context"
	"encoding/json"
	"time"
)

// Effect says what a built-in does to the world.
type Effect string

// The effects a built-in may declare.
const (
	// Pure built-ins compute from their arguments only; they are not recorded.
	Pure Effect = "pure"
	// Read built-ins observe the cluster or the node; they are recorded.
	Read Effect = "read"
	// Write built-ins change the cluster or the node; they are recorded with
	// their before-state and inverse, refused under --dry-run unless they can
	// plan, and need approval.
	Write Effect = "write"
)

// Param declares one argument of a built-in.
type Param struct {
	// Name is the keyword name (kubectl's words: namespace, container, tail, since).
	Name string
	// Type is one of string, int, float, bool, duration, list, dict, any.
	Type string
	// Doc is a one-line description.
	Doc string
	// Required marks a parameter that has no default.
	Required bool
	// Default is the JSON-form default value; nil means absent.
	Default any
}

// Spec declares a built-in once: its name, documentation, parameters,
// effect and implementation. Every call goes through the engine's wrapper.
type Spec struct {
	// Name is the snake_case verb the runbook calls.
	Name string
	// Doc is the documentation; its first sentence is the summary.
	Doc string
	// Params are the accepted arguments, positional in this order.
	Params []Param
	// Result documents the fields of the returned value.
	Result string
	// Effect is pure, read or write.
	Effect Effect
	// Timeout bounds one call; a "timeout" argument overrides it. Zero means
	// the run's own deadline only.
	Timeout time.Duration
	// Plans marks a write built-in that honours Call.DryRun by computing its
	// plan without changing anything; other write built-ins are refused
	// under --dry-run.
	Plans bool
	// Restores marks a write built-in that only puts back what the run's
	// own, approved changes replaced (rollback): it needs no approval.
	Restores bool
	// Run performs the call. Its result must marshal to JSON; the runbook
	// sees the value decoded from that JSON.
	Run func(ctx context.Context, c *Call) (any, error)
	// Undo reverts one recorded mutation of this built-in (kdiag undo). It
	// must refuse, naming the object, when the object changed since.
	Undo func(ctx context.Context, m *Mutation) error
	// CheckUndo, if set, verifies a recorded mutation before anyone is
	// asked to approve its undo: the target, the before- and after-state
	// and the call's arguments (m.Args) must describe one change of one
	// object. It returns the exact change Undo will make, which the
	// approval prompt shows; Undo applies only that change.
	CheckUndo func(m *Mutation) (change any, err error)
}

// DryRun is the dry-run mode of a run.
type DryRun string

// The dry-run modes, as kubectl names them.
const (
	DryRunNone   DryRun = ""
	DryRunClient DryRun = "client"
	DryRunServer DryRun = "server"
)

// Mutation is what a write built-in records so that a change can be
// reviewed and reverted from the transcript alone.
type Mutation struct {
	// Target names the changed object, e.g. "configmap default/myconfig".
	Target string `json:"target"`
	// Before is the object before the change.
	Before json.RawMessage `json:"before,omitempty"`
	// Patch is the change that was (or, in a dry run, would be) applied.
	Patch json.RawMessage `json:"patch,omitempty"`
	// Inverse is the change that reverts Patch.
	Inverse json.RawMessage `json:"inverse,omitempty"`
	// After is the object after the change.
	After json.RawMessage `json:"after,omitempty"`
	// Applied is false for dry runs.
	Applied bool `json:"applied"`
	// Args are the recorded call's arguments; Undo sets them (they are not
	// part of the mutation record) so that the undo can be checked against
	// what the call asked for.
	Args Args `json:"-"`
}

// Call is one invocation of a built-in as its implementation sees it.
type Call struct {
	// Spec is the built-in being called.
	Spec *Spec
	// Args are the bound arguments in JSON form, defaults filled in.
	Args Args
	// DryRun is the run's dry-run mode (write built-ins must honour it).
	DryRun DryRun
	// Pos is the runbook position of the call, file:line:col.
	Pos string
	// Step is the name of the enclosing step, if any.
	Step string

	mutation *Mutation
	cleanups *[]cleanup
}

// RecordMutation attaches the before-state, patch and inverse of a change
// to this call's transcript event.
func (c *Call) RecordMutation(m Mutation) { c.mutation = &m }

// Defer registers fn to run when the run ends, whether it succeeded, failed
// or was cancelled (delete helper pods, detach from traced processes).
func (c *Call) Defer(name string, fn func(ctx context.Context) error) {
	if c.cleanups != nil {
		*c.cleanups = append(*c.cleanups, cleanup{name: name, fn: fn})
	}
}

type cleanup struct {
	name string
	fn   func(ctx context.Context) error
}

// AddTimeoutParams gives every non-pure built-in of specs that has a
// default Timeout, and declares no "timeout" argument of its own, a
// keyword argument "timeout" (a duration) that overrides the default for
// one call. Call it once, where the built-ins are assembled.
func AddTimeoutParams(specs []*Spec) {
	for _, s := range specs {
		if s.Effect == Pure || s.Timeout <= 0 {
			continue
		}
		has := false
		for _, p := range s.Params {
			has = has || p.Name == "timeout"
		}
		if !has {
			s.Params = append(s.Params, Param{Name: "timeout", Type: "duration", Default: s.Timeout.String(),
				Doc: "the longest this call may take; it then fails with kind timeout or unavailable"})
		}
	}
}
