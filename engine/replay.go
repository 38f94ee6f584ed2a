package engine

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/kdiag/kdiag/engine/transcript"
)

// replayer answers calls from a recorded transcript, strictly in order.
type replayer struct {
	t     *transcript.Transcript
	calls []*transcript.Event
	next  int
}

func newReplayer(t *transcript.Transcript) *replayer {
	return &replayer{t: t, calls: t.Calls()}
}

// answer fills ev (name, position and args already set) with the next
// recorded call's outcome, or returns a *DivergenceError.
func (p *replayer) answer(ev *transcript.Event, s *Spec) error {
	if p.next >= len(p.calls) {
		if f := p.t.Footer; f != nil && f.Status == transcript.StatusCancelled {
			return &CancelledError{Reason: "the recorded run was cancelled here"}
		}
		return &DivergenceError{Seq: p.lastSeq() + 1, Pos: ev.Pos, Expected: "no more calls (the recording ends here)", Actual: describeCall(ev)}
	}
	rec := p.calls[p.next]
	if rec.Builtin != ev.Builtin || !sameJSON(rec.Args, ev.Args) && !sameButNewDefaults(rec.Args, ev.Args, s) {
		return &DivergenceError{Seq: rec.Seq, Pos: ev.Pos, Expected: describeCall(rec) + " at " + rec.Pos, Actual: describeCall(ev)}
	}
	p.next++
	// The replay's transcript holds the call as it was recorded (a
	// parameter the recording predates is not shown as if it was passed).
	ev.Args = rec.Args
	ev.AtMS, ev.DurationMS = rec.AtMS, rec.DurationMS
	ev.Result, ev.Error, ev.Mutation, ev.DryRun = rec.Result, rec.Error, rec.Mutation, rec.DryRun
	return nil
}

// finish reports recorded calls the replayed runbook did not make.
func (p *replayer) finish() error {
	if p.next < len(p.calls) {
		rec := p.calls[p.next]
		return &DivergenceError{Seq: rec.Seq, Pos: "end of runbook", Expected: describeCall(rec) + " at " + rec.Pos, Actual: "no further call (the runbook returned)"}
	}
	return nil
}

func (p *replayer) lastSeq() int {
	if len(p.calls) == 0 {
		return 0
	}
	return p.calls[len(p.calls)-1].Seq
}

func describeCall(e *transcript.Event) string {
	return fmt.Sprintf("%s(%s)", e.Builtin, e.Args)
}

func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// sameButNewDefaults reports whether a call's arguments are the recorded
// ones but for parameters the recording predates: present now with their
// default value, absent from the recording. A built-in that gains a
// parameter (with a default that keeps its old behaviour) does not
// invalidate recordings made before.
func sameButNewDefaults(recorded, actual json.RawMessage, s *Spec) bool {
	if s == nil {
		return false
	}
	var rec, act map[string]any
	if json.Unmarshal(recorded, &rec) != nil || json.Unmarshal(actual, &act) != nil {
		return false
	}
	for _, p := range s.Params {
		v, now := act[p.Name]
		if _, before := rec[p.Name]; before || !now || p.Default == nil {
			continue
		}
		if d, err := json.Marshal(p.Default); err == nil {
			if b, err := json.Marshal(v); err == nil && bytes.Equal(d, b) {
				delete(act, p.Name)
			}
		}
	}
	a, err1 := json.Marshal(rec)
	b, err2 := json.Marshal(act)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
