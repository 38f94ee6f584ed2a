package engine

import (
	"context"
	"encoding/json"

	"github.com/kdiag/kdiag/engine/transcript"
)

// RollbackName is the engine's own write built-in that reverts, inside a
// run, the changes that run made: a fix that did not prove itself.
const RollbackName = "rollback"

// RollbackResult is one change rollback looked at.
type RollbackResult struct {
	// Seq is the call that made the change.
	Seq int `json:"seq"`
	// Builtin is the built-in that made it.
	Builtin string `json:"builtin"`
	// Target names the changed object.
	Target string `json:"target"`
	// Reverted reports that the change was undone.
	Reverted bool `json:"reverted"`
	// Note says why not (irreversible, changed since, failed).
	Note string `json:"note"`
}

// rollbackSpec returns rollback, bound to this run.
func (r *run) rollbackSpec() *Spec {
	return &Spec{
		Name: RollbackName,
		Doc: "rollback reverts the changes this run has made, newest first, through each change's recorded inverse " +
			"(the code kdiag undo runs), so that a fix that did not prove itself undoes itself. A change that has no inverse " +
			"(a restart) is reported and skipped; one whose object changed since is refused and reported. It needs no " +
			"approval of its own: it only puts back what the run's approved changes replaced. kdiag undo skips what it reverted.",
		Params: []Param{
			{Name: "reason", Type: "string", Required: true, Doc: "why the changes are rolled back (recorded in the transcript)"},
		},
		Result:   "reverted: True when every reversible change was reverted\nchanges: [{seq, builtin, target, reverted, note}] newest first",
		Effect:   Write,
		Plans:    true,
		Restores: true,
		Run: func(ctx context.Context, c *Call) (any, error) {
			return r.rollback(ctx, c.DryRun)
		},
	}
}

// rollback reverts the run's applied, not yet reverted changes.
func (r *run) rollback(ctx context.Context, dry DryRun) (any, error) {
	reverted := revertedSeqs(r.events)
	changes := []RollbackResult{}
	all := true
	for i := len(r.events) - 1; i >= 0; i-- {
		e := r.events[i]
		if e.Builtin == RollbackName || e.Effect != string(Write) || len(e.Mutation) == 0 || reverted[e.Seq] {
			continue
		}
		var m Mutation
		if err := json.Unmarshal(e.Mutation, &m); err != nil || !m.Applied {
			continue
		}
		res := RollbackResult{Seq: e.Seq, Builtin: e.Builtin, Target: m.Target}
		s := r.specs[e.Builtin]
		switch {
		case dry != DryRunNone:
			res.Note = "dry run: would be reverted"
		case s == nil || s.Undo == nil:
			res.Note, all = e.Builtin+" has no undo", false
		default:
			if err := checkRecorded(e, s, &m); err != nil {
				res.Note, all = err.Error(), false
				break
			}
			if err := s.Undo(ctx, &m); err != nil {
				if KindOf(err) == KindIrreversible {
					res.Note = "irreversible: " + err.Error()
				} else {
					res.Note, all = err.Error(), false
				}
			} else {
				res.Reverted = true
			}
		}
		changes = append(changes, res)
	}
	return map[string]any{"reverted": all && dry == DryRunNone, "changes": changes}, nil
}

// revertedSeqs returns the seqs of changes a rollback call of events
// reverted.
func revertedSeqs(events []*transcript.Event) map[int]bool {
	out := map[int]bool{}
	for _, e := range events {
		if e.Builtin != RollbackName || len(e.Result) == 0 {
			continue
		}
		var res struct {
			Changes []RollbackResult `json:"changes"`
		}
		if json.Unmarshal(e.Result, &res) != nil {
			continue
		}
		for _, ch := range res.Changes {
			if ch.Reverted {
				out[ch.Seq] = true
			}
		}
	}
	return out
}

// checkRecorded prepares a recorded mutation for its built-in's Undo the
// way kdiag undo does: before and after name one object, the call's
// arguments are attached, and the built-in's own check passes.
func checkRecorded(e *transcript.Event, s *Spec, m *Mutation) error {
	if err := sameObject(m.Before, m.After); err != nil {
		return err
	}
	if len(e.Args) > 0 && string(e.Args) != "null" {
		if err := json.Unmarshal(e.Args, &m.Args); err != nil {
			return err
		}
	}
	if s.CheckUndo != nil {
		if _, err := s.CheckUndo(m); err != nil {
			return err
		}
	}
	return nil
}
