//go:build linux

package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

// call runs the node built-in name through its Spec, with the engine's
// defaults filled in, as the engine's wrapper would.
func call(t testing.TB, name string, args engine.Args) (any, error) {
	t.Helper()
	for _, s := range node.Specs() {
		if s.Name != name {
			continue
		}
		a := engine.Args{}
		for _, p := range s.Params {
			if p.Default != nil {
				a[p.Name] = p.Default
			}
		}
		for k, v := range args {
			a[k] = v
		}
		ctx := context.Background()
		if d := a.Duration("timeout"); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		} else if s.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.Timeout)
			defer cancel()
		}
		v, err := s.Run(ctx, &engine.Call{Spec: s, Args: a})
		if err == nil {
			if _, jerr := json.Marshal(v); jerr != nil {
				t.Fatalf("%s: result does not marshal to JSON: %v", name, jerr)
			}
		}
		return v, err
	}
	t.Fatalf("no built-in %q", name)
	return nil, nil
}

// must is call for calls that must succeed.
func must[T any](t testing.TB, name string, args engine.Args) T {
	t.Helper()
	v, err := call(t, name, args)
	if err != nil {
		t.Fatalf("%s(%v): %v", name, args, err)
	}
	r, ok := v.(T)
	if !ok {
		t.Fatalf("%s returned %T", name, v)
	}
	return r
}

// wantErr checks an expected failure's kind and message.
func wantErr(t testing.TB, err error, kind engine.Kind, contains string) {
	t.Helper()
	var e *engine.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want a %s engine error", err, err, kind)
	}
	if e.Kind != kind || !strings.Contains(e.Message, contains) {
		t.Fatalf("got %s error %q, want %s containing %q", e.Kind, e.Message, kind, contains)
	}
}

// asArg turns a result into the JSON form a runbook passes back (a record
// arrives as a dict).
func asArg(t testing.TB, v any) map[string]any {
	t.Helper()
	a, err := engine.ArgsOf(v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// start starts a target and returns it with an enter_ns handle on it.
func start(t testing.TB, o nodetest.Options) (*nodetest.Target, map[string]any) {
	t.Helper()
	tg := nodetest.Start(t, o)
	h := must[*node.NSHandle](t, "enter_ns", engine.Args{"pid": int64(tg.PID)})
	return tg, asArg(t, h)
}

// eventually retries f until it returns true or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readlink(t testing.TB, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
