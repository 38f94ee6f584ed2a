package suite

import (
	"fmt"
	"regexp"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Assert is the assert module of *_test.star files: assert.eq(a, b),
// assert.ne(a, b), assert.true(x, msg=""), assert.contains(container, x),
// assert.fails(fn, pattern).
var Assert = &starlarkstruct.Module{
	Name: "assert",
	Members: starlark.StringDict{
		"eq":       starlark.NewBuiltin("assert.eq", assertEq(true)),
		"ne":       starlark.NewBuiltin("assert.ne", assertEq(false)),
		"true":     starlark.NewBuiltin("assert.true", assertTrue),
		"contains": starlark.NewBuiltin("assert.contains", assertContains),
		"fails":    starlark.NewBuiltin("assert.fails", assertFails),
	},
}

func assertEq(want bool) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var x, y starlark.Value
		msg := ""
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "got", &x, "want", &y, "msg?", &msg); err != nil {
			return nil, err
		}
		eq, err := starlark.Equal(x, y)
		if err != nil {
			return nil, err
		}
		if eq != want {
			op := "!="
			if !want {
				op = "=="
			}
			return nil, fmt.Errorf("%s: %s %s %s %s", b.Name(), x, op, y, msg)
		}
		return starlark.None, nil
	}
}

func assertTrue(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	msg := ""
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x, "msg?", &msg); err != nil {
		return nil, err
	}
	if !x.Truth() {
		return nil, fmt.Errorf("%s: %s is not true %s", b.Name(), x, msg)
	}
	return starlark.None, nil
}

func assertContains(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var c, x starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "container", &c, "x", &x); err != nil {
		return nil, err
	}
	v, err := starlark.Binary(syntax.IN, x, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", b.Name(), err)
	}
	if !v.Truth() {
		return nil, fmt.Errorf("%s: %s not in %s", b.Name(), x, c)
	}
	return starlark.None, nil
}

func assertFails(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	var pattern string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "pattern", &pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: bad pattern: %v", b.Name(), err)
	}
	_, callErr := starlark.Call(thread, fn, nil, nil)
	if callErr == nil {
		return nil, fmt.Errorf("%s: %s did not fail", b.Name(), fn.Name())
	}
	msg := callErr.Error()
	if ee, ok := callErr.(*starlark.EvalError); ok {
		msg = ee.Msg
	}
	if !re.MatchString(msg) {
		return nil, fmt.Errorf("%s: error %q does not match %q", b.Name(), msg, pattern)
	}
	return starlark.None, nil
}
