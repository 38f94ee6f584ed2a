package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kdiag/kdiag/engine/transcript"
)

// UndoResult is the outcome of reverting one recorded mutation.
type UndoResult struct {
	Seq     int    `json:"seq"`
	Builtin string `json:"builtin"`
	Target  string `json:"target"`
	Error   string `json:"error,omitempty"`
	// Irreversible is set, with Note, for a change that has no inverse.
	Irreversible bool   `json:"irreversible,omitempty"`
	Note         string `json:"note,omitempty"`
}

// Undo reverts the applied mutations recorded in t, newest first, using
// each built-in's Undo. Every mutation is first checked: its before- and
// after-state must name the same object, and a built-in's CheckUndo must
// accept it against the call's own arguments. It stops at the first
// refusal or failure, so that later changes are never reverted over
// earlier ones out of order. The approver is asked once per mutation,
// shown the object and the exact change; nil refuses.
func Undo(ctx context.Context, t *transcript.Transcript, specs []*Spec, approver Approver) ([]UndoResult, error) {
	byName := map[string]*Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	calls := t.Calls()
	reverted := revertedSeqs(calls)
	var out []UndoResult
	for i := len(calls) - 1; i >= 0; i-- {
		e := calls[i]
		if e.Effect != string(Write) || len(e.Mutation) == 0 || reverted[e.Seq] {
			continue
		}
		var m Mutation
		if err := json.Unmarshal(e.Mutation, &m); err != nil {
			return out, fmt.Errorf("undo: seq %d: corrupt mutation record: %v", e.Seq, err)
		}
		if !m.Applied {
			continue
		}
		res := UndoResult{Seq: e.Seq, Builtin: e.Builtin, Target: m.Target}
		refuse := func(format string, args ...any) ([]UndoResult, error) {
			res.Error = fmt.Sprintf(format, args...)
			return append(out, res), fmt.Errorf("undo: seq %d %s %s: %s", e.Seq, e.Builtin, m.Target, res.Error)
		}
		s := byName[e.Builtin]
		if s == nil || s.Undo == nil {
			return refuse("%s cannot be undone by this kdiag", e.Builtin)
		}
		if err := sameObject(m.Before, m.After); err != nil {
			return refuse("%v; the transcript was altered, refusing to undo", err)
		}
		if len(e.Args) > 0 && string(e.Args) != "null" {
			if err := json.Unmarshal(e.Args, &m.Args); err != nil {
				return refuse("corrupt call arguments: %v", err)
			}
		}
		var change any = json.RawMessage(orNull(m.Inverse))
		if s.CheckUndo != nil {
			c, err := s.CheckUndo(&m)
			if err != nil {
				return refuse("%v", err)
			}
			change = c
		}
		if approver == nil {
			return out, fmt.Errorf("undo: reverting %s needs approval; re-run with --yes", m.Target)
		}
		if err := approver.Approve(ctx, Approval{Builtin: e.Builtin + " (undo)", Pos: e.Pos, Args: m.Args, Target: m.Target, Plan: change}); err != nil {
			return out, fmt.Errorf("undo: %s: refused: %v", m.Target, err)
		}
		if err := s.Undo(ctx, &m); err != nil {
			if KindOf(err) == KindIrreversible {
				res.Irreversible, res.Note = true, err.Error()
				out = append(out, res)
				continue
			}
			res.Error = err.Error()
			return append(out, res), fmt.Errorf("undo: seq %d: %w", e.Seq, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// sameObject checks that two recorded Kubernetes objects (either may be
// absent) have the same kind, namespace and name.
func sameObject(before, after json.RawMessage) error {
	type ident struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	var b, a ident
	if len(before) == 0 || len(after) == 0 || json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil {
		return nil
	}
	name := func(o ident) string { return o.Kind + " " + o.Metadata.Namespace + "/" + o.Metadata.Name }
	if b.Metadata.Name != a.Metadata.Name || b.Metadata.Namespace != a.Metadata.Namespace || (a.Kind != "" && b.Kind != "" && a.Kind != b.Kind) {
		return fmt.Errorf("the recorded before-state names %s but the after-state names %s", name(b), name(a))
	}
	return nil
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
