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
// each built-in's Undo. It stops at the first refusal or failure, so that
// later changes are never reverted over earlier ones out of order. The
// approver is asked once per mutation; nil refuses.
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
		s := byName[e.Builtin]
		if s == nil || s.Undo == nil {
			res.Error = fmt.Sprintf("%s cannot be undone by this kdiag", e.Builtin)
			return append(out, res), fmt.Errorf("undo: seq %d %s %s: %s", e.Seq, e.Builtin, m.Target, res.Error)
		}
		if approver == nil {
			return out, fmt.Errorf("undo: reverting %s needs approval; re-run with --yes", m.Target)
		}
		if err := approver.Approve(ctx, Approval{Builtin: e.Builtin + " (undo)", Pos: e.Pos, Plan: json.RawMessage(orNull(m.Inverse))}); err != nil {
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

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
