package engine

import (
	"errors"
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// attempt is the runbook function attempt(fn, *args, **kwargs): it calls
// fn and turns a built-in failure of a known kind (not_found, timeout,
// unavailable, forbidden, ...) into a value, so that a runbook can go on
// with what still works and say in its verdict what it could not check.
// Cancellation, fail() and mistakes in the runbook still end the run; a
// replay sees the recorded failure and takes the same branch.
func (r *run) attempt(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := r.notLoading("attempt"); err != nil {
		return nil, err
	}
	if len(args) < 1 {
		return nil, fmt.Errorf("attempt: want attempt(fn, *args, **kwargs), got no function")
	}
	fn, ok := args[0].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("attempt: want a function to call, got %s", args[0].Type())
	}
	v, err := starlark.Call(thread, fn, args[1:], kwargs)
	if err == nil {
		return attemptResult(true, v, "", ""), nil
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind == KindCancelled || r.ctx.Err() != nil {
		return nil, err
	}
	return attemptResult(false, starlark.None, string(e.Kind), e.Message), nil
}

func attemptResult(ok bool, v starlark.Value, kind, msg string) starlark.Value {
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"ok":    starlark.Bool(ok),
		"value": v,
		"kind":  starlark.String(kind),
		"error": starlark.String(msg),
	})
}
