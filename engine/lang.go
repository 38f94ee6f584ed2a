package engine

import (
	"fmt"
	"strings"

	"github.com/kdiag/kdiag/engine/transcript"
	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Severities a finding may have, mildest first.
var Severities = []string{"info", "warning", "critical"}

// LanguageDoc documents the functions every runbook has besides the
// built-ins (kdiag builtins lists them first).
var LanguageDoc = []struct{ Name, Signature, Doc string }{
	{"runbook", "runbook(name, summary, doc=\"\", params=[])", "Declares the runbook's metadata and parameters, once, at the top of the main file."},
	{"param", "param(name, type=\"string\", default=?, required=?, doc=\"\")", "Declares a parameter: types string, int, float, bool, duration, list. Required unless a default is given."},
	{"main", "def main(p):", "The runbook's entry point; p.NAME reads a parameter. Built-ins that read or change the cluster or node may only be called from here."},
	{"step", "step(name, fn, *args, **kwargs)", "Runs fn(*args, **kwargs) as a named step, recorded with its start, end and status; returns fn's result. Steps nest."},
	{"finding", "finding(severity, summary, evidence=None)", "Records a finding (severity info, warning or critical) with evidence (any value; secrets are redacted)."},
	{"verdict", "verdict(summary)", "Records the run's conclusion; the last verdict is the report's."},
	{"log", "log(*args)", "Prints a line to the console and the transcript (print() does the same)."},
	{"attempt", "attempt(fn, *args, **kwargs)", "Calls fn(*args, **kwargs) and returns struct(ok, value, kind, error): a built-in failure (kind not_found, forbidden, timeout, unavailable, ...) becomes a value instead of ending the run, so a runbook can go on with what still works and say what it could not check. Cancellation and fail() still end the run."},
	{"fail", "fail(msg)", "Stops the run with status failed and the message."},
	{"struct", "struct(**kwargs)", "Makes an immutable struct."},
	{"rollback", "rollback(reason)", "Reverts the changes this run made, newest first, through their recorded inverses (a fix that did not prove itself); irreversible ones (restarts) are skipped and named. Needs no approval of its own; kdiag undo skips what it reverted. Returns {reverted, changes: [{seq, builtin, target, reverted, note}]}."},
	{"json", "json.encode(x) / json.decode(s) / json.indent(s)", "The Starlark JSON module."},
}

func (r *run) predeclared() starlark.StringDict {
	d := starlark.StringDict{
		"param":   starlark.NewBuiltin("param", paramBuiltin),
		"step":    starlark.NewBuiltin("step", r.step),
		"finding": starlark.NewBuiltin("finding", r.finding),
		"verdict": starlark.NewBuiltin("verdict", r.verdict),
		"log":     starlark.NewBuiltin("log", r.log),
		"fail":    starlark.NewBuiltin("fail", r.fail),
		"attempt": starlark.NewBuiltin("attempt", r.attempt),
		"struct":  starlark.NewBuiltin("struct", starlarkstruct.Make),
		"json":    starjson.Module,
	}
	rb := r.rollbackSpec()
	r.specs[rb.Name], d[rb.Name] = rb, r.wrap(rb)
	for _, s := range r.opts.Specs {
		r.specs[s.Name] = s
		d[s.Name] = r.wrap(s)
	}
	return d
}

func (r *run) notLoading(name string) error {
	if r.loading {
		return fmt.Errorf("%s: called while loading the runbook; call it from main(p)", name)
	}
	return nil
}

func (r *run) step(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := r.notLoading("step"); err != nil {
		return nil, err
	}
	if len(args) < 2 {
		return nil, fmt.Errorf("step: want step(name, fn, *args, **kwargs), got %d positional arguments", len(args))
	}
	name, ok := starlark.AsString(args[0])
	if !ok || name == "" {
		return nil, fmt.Errorf("step: the name must be a non-empty string, got %s", args[0].Type())
	}
	fn, ok := args[1].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("step %q: want a function to run, got %s", name, args[1].Type())
	}
	pos := callerPos(thread, 1)
	r.steps = append(r.steps, name)
	full := r.stepName()
	r.emit(&transcript.Event{Type: transcript.TypeStepStart, Step: full, Pos: pos}, false)
	v, err := starlark.Call(thread, fn, args[2:], kwargs)
	r.steps = r.steps[:len(r.steps)-1]
	end := &transcript.Event{Type: transcript.TypeStepEnd, Step: full, Pos: pos, Status: transcript.StatusOK}
	if err != nil {
		end.Status, end.Message = transcript.StatusFailed, firstLine(err)
	}
	r.emit(end, true)
	return v, err
}

func (r *run) finding(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var severity, summary string
	var evidence starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "severity", &severity, "summary", &summary, "evidence?", &evidence); err != nil {
		return nil, err
	}
	if !contains(Severities, severity) {
		return nil, fmt.Errorf("finding: unknown severity %q (want %s)", severity, strings.Join(Severities, ", "))
	}
	if err := r.notLoading("finding"); err != nil {
		return nil, err
	}
	e := &transcript.Event{Type: transcript.TypeFinding, Step: r.stepName(), Pos: callerPos(thread, 1), Severity: severity, Summary: summary}
	if evidence != starlark.None {
		g, err := ToGo(evidence)
		if err != nil {
			return nil, fmt.Errorf("finding: evidence: %v", err)
		}
		if e.Evidence, err = redactedJSON(g); err != nil {
			return nil, fmt.Errorf("finding: evidence: %v", err)
		}
	}
	r.emit(e, true)
	return starlark.None, nil
}

func (r *run) verdict(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var summary string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "summary", &summary); err != nil {
		return nil, err
	}
	if err := r.notLoading("verdict"); err != nil {
		return nil, err
	}
	r.emit(&transcript.Event{Type: transcript.TypeVerdict, Step: r.stepName(), Pos: callerPos(thread, 1), Summary: summary}, true)
	return starlark.None, nil
}

func (r *run) log(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("log: unexpected keyword argument %s", kwargs[0][0])
	}
	parts := make([]string, len(args))
	for i, a := range args {
		if s, ok := starlark.AsString(a); ok {
			parts[i] = s
		} else {
			parts[i] = a.String()
		}
	}
	msg := strings.Join(parts, " ")
	if g, ok := Redact(msg).(string); ok {
		msg = g
	}
	r.emit(&transcript.Event{Type: transcript.TypePrint, Step: r.stepName(), Pos: callerPos(thread, 1), Message: msg}, false)
	return starlark.None, nil
}

func (r *run) fail(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("fail: %s", msg)
}

func firstLine(err error) string {
	msg := err.Error()
	var ee *starlark.EvalError
	if asEval(err, &ee) {
		msg = ee.Msg
	}
	s, _, _ := strings.Cut(msg, "\n")
	return s
}
