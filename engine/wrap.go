package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"go.starlark.net/starlark"
)

// wrap returns the Starlark built-in for s: the one wrapper every
// built-in call goes through. It binds and checks arguments; for non-pure
// built-ins it refuses calls at load time, enforces dry-run and approval
// for writes, applies the timeout, runs the implementation (or, in a
// replay, takes the recorded answer), redacts, records the event, and
// decodes the recorded JSON into the value the runbook sees.
func (r *run) wrap(s *Spec) *starlark.Builtin {
	return starlark.NewBuiltin(s.Name, func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		a, err := Bind(s, args, kwargs)
		if err != nil {
			return nil, err
		}
		if s.Effect == Pure {
			v, err := s.Run(r.ctx, &Call{Spec: s, Args: a})
			if err != nil {
				return nil, prefixed(s.Name, err)
			}
			return toValue(v)
		}
		if r.loading {
			return nil, fmt.Errorf("%s: called while loading the runbook; built-ins that read or change the cluster or node run only inside main(p)", s.Name)
		}
		ev := &transcript.Event{Type: transcript.TypeCall, Step: r.stepName(), Pos: callerPos(thread, 1), Builtin: s.Name, Effect: string(s.Effect)}
		if ev.Args, err = redactedJSON(map[string]any(a)); err != nil {
			return nil, fmt.Errorf("%s: arguments: %v", s.Name, err)
		}
		if r.replay != nil {
			if err := r.replay.answer(ev, s); err != nil {
				return nil, err
			}
			r.clock = ev.AtMS + ev.DurationMS
			r.seq++
			ev.Seq = r.seq
			r.events = append(r.events, ev)
			r.write(ev, false)
		} else {
			if err := r.live(s, a, ev); err != nil {
				return nil, err
			}
		}
		r.calls++
		if ev.Error != nil {
			if ev.Error.Kind == string(KindCancelled) {
				thread.Cancel(ev.Error.Message)
			}
			return nil, &Error{Kind: Kind(ev.Error.Kind), Message: ev.Error.Message}
		}
		v, err := FromJSON(ev.Result)
		if err != nil {
			return nil, fmt.Errorf("%s: decode result: %v", s.Name, err)
		}
		return v, nil
	})
}

// live runs the implementation and records the event.
func (r *run) live(s *Spec, a Args, ev *transcript.Event) error {
	call := &Call{Spec: s, Args: a, DryRun: r.opts.DryRun, Pos: ev.Pos, Step: ev.Step, cleanups: &r.cleanups}
	var result any
	if s.Effect == Write {
		ev.DryRun = string(r.opts.DryRun)
		result = r.gate(s, call)
	}
	var callErr error
	ev.AtMS = r.elapsed()
	if result == nil {
		if r.opts.Progress != nil {
			r.opts.Progress(s.Name, ev.Pos)
		}
		ctx, cancel := r.callContext(s, a)
		t0 := time.Now()
		result, callErr = safeRun(ctx, s, call)
		ev.DurationMS = roundMS(time.Since(t0))
		if callErr != nil && ctx.Err() != nil && KindOf(callErr) == KindFailed {
			if r.ctx.Err() != nil {
				callErr = &Error{Kind: KindCancelled, Message: fmt.Sprintf("%s: cancelled: %v", s.Name, callErr)}
			} else {
				callErr = &Error{Kind: KindTimeout, Message: fmt.Sprintf("%s: timed out after %s: %v", s.Name, r.timeout(s, a), callErr)}
			}
		}
		cancel()
	}
	if callErr != nil {
		callErr = prefixed(s.Name, callErr)
		ev.Error = &transcript.CallError{Kind: string(KindOf(callErr)), Message: callErr.Error()}
	} else {
		res, err := redactedJSON(result)
		if err != nil {
			return fmt.Errorf("%s: result does not encode as JSON: %v", s.Name, err)
		}
		ev.Result = res
	}
	if call.mutation != nil {
		m, err := redactedJSON(call.mutation)
		if err != nil {
			return fmt.Errorf("%s: mutation record: %v", s.Name, err)
		}
		ev.Mutation = m
	}
	r.seq++
	ev.Seq = r.seq
	r.events = append(r.events, ev)
	r.write(ev, s.Effect == Write)
	return nil
}

// gate enforces dry-run and approval for a write built-in. It returns a
// refusal value, or nil to go ahead.
func (r *run) gate(s *Spec, call *Call) any {
	refuse := func(reason string) any {
		return map[string]any{"applied": false, "refused": true, "reason": reason}
	}
	if r.opts.DryRun != DryRunNone {
		if !s.Plans {
			return refuse(fmt.Sprintf("%s changes the cluster and cannot plan; refused under --dry-run", s.Name))
		}
		return nil
	}
	if s.Restores {
		return nil
	}
	if r.opts.Approver == nil {
		hint := r.opts.RefusalHint
		if hint == "" {
			hint = "re-run with --yes to allow it"
		}
		return refuse(fmt.Sprintf("%s changes the cluster and no approval was given; %s", s.Name, hint))
	}
	var plan any
	if s.Plans {
		planCall := *call
		planCall.DryRun, planCall.cleanups = DryRunClient, nil
		ctx, cancel := r.callContext(s, call.Args)
		plan, _ = safeRun(ctx, s, &planCall)
		cancel()
	}
	if err := r.opts.Approver.Approve(r.ctx, Approval{Builtin: s.Name, Pos: call.Pos, Args: call.Args, Plan: plan}); err != nil {
		return refuse(fmt.Sprintf("%s: mutation refused: %v", s.Name, err))
	}
	return nil
}

func (r *run) timeout(s *Spec, a Args) time.Duration {
	if d := a.Duration("timeout"); d > 0 {
		return d
	}
	return s.Timeout
}

func (r *run) callContext(s *Spec, a Args) (context.Context, context.CancelFunc) {
	if d := r.timeout(s, a); d > 0 {
		return context.WithTimeout(r.ctx, d)
	}
	return context.WithCancel(r.ctx)
}

// safeRun calls the implementation, turning a panic into an error.
func safeRun(ctx context.Context, s *Spec, c *Call) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: internal error (panic): %v\n%s", s.Name, p, debug.Stack())
		}
	}()
	return s.Run(ctx, c)
}

// prefixed makes sure an error message starts with the built-in's name.
func prefixed(name string, err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, name+":") || strings.HasPrefix(msg, name+" ") {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: e.Kind, Message: name + ": " + msg}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// redactedJSON encodes v, redacts secrets and re-encodes with sorted keys.
func redactedJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil || !mayHoldSecret(b) {
		return b, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		return nil, err
	}
	return json.Marshal(Redact(g))
}

func toValue(v any) (starlark.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return FromJSON(b)
}

// Bind matches Starlark arguments to a built-in's parameters: positional
// in order, then keywords; it rejects unknown, duplicate and missing
// arguments and values of the wrong type, and fills defaults.
func Bind(s *Spec, args starlark.Tuple, kwargs []starlark.Tuple) (Args, error) {
	if len(args) > len(s.Params) {
		return nil, fmt.Errorf("%s: got %d positional arguments, want at most %d (%s)", s.Name, len(args), len(s.Params), paramNames(s))
	}
	out := Args{}
	set := func(p Param, v starlark.Value) error {
		if _, dup := out[p.Name]; dup {
			return fmt.Errorf("%s: argument %q given twice", s.Name, p.Name)
		}
		g, err := ToGo(v)
		if err != nil {
			return fmt.Errorf("%s: argument %q: %v", s.Name, p.Name, err)
		}
		if err := checkType(p.Type, g); err != nil {
			return fmt.Errorf("%s: argument %q: %v", s.Name, p.Name, err)
		}
		out[p.Name] = g
		return nil
	}
	for i, v := range args {
		if err := set(s.Params[i], v); err != nil {
			return nil, err
		}
	}
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		p, ok := s.param(name)
		if !ok {
			return nil, fmt.Errorf("%s: unknown argument %q (arguments: %s)", s.Name, name, paramNames(s))
		}
		if err := set(p, kv[1]); err != nil {
			return nil, err
		}
	}
	for _, p := range s.Params {
		if _, ok := out[p.Name]; ok {
			if out[p.Name] == nil && p.Default != nil {
				out[p.Name] = copyJSON(p.Default)
			}
			continue
		}
		if p.Required {
			return nil, fmt.Errorf("%s: missing argument %q (arguments: %s)", s.Name, p.Name, paramNames(s))
		}
		if p.Default != nil {
			out[p.Name] = copyJSON(p.Default)
		}
	}
	return out, nil
}

func (s *Spec) param(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

func paramNames(s *Spec) string {
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
		if p.Required {
			names[i] += "*"
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// copyJSON deep-copies a JSON-form value so that defaults are never shared.
func copyJSON(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64:
		return v
	case int:
		return int64(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return v
	}
	return normalize(out)
}
