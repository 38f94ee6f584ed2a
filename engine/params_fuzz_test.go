package engine

import (
	"errors"
	"testing"
)

// FuzzBindParams feeds arbitrary -p values to every parameter type: the
// binder must never panic, and must either accept a value of the declared
// type or give a usage error.
func FuzzBindParams(f *testing.F) {
	for _, s := range []string{"10", "-3", "1.5", "true", "2s", "a,b", "", "1e400", "0x10"} {
		f.Add("int", s)
		f.Add("duration", s)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		if !contains(paramTypes, typ) {
			return
		}
		rb := &Runbook{Path: "f.star", Params: []ParamDecl{{Name: "x", Type: typ, Required: true}}}
		got, err := BindParams(rb, map[string]any{"x": value})
		if err != nil {
			var u *UsageError
			if !errors.As(err, &u) {
				t.Fatalf("non-usage error %T: %v", err, err)
			}
			return
		}
		if err := checkType(map[string]string{"string": "string", "int": "int", "float": "float", "bool": "bool", "duration": "duration", "list": "list"}[typ], got["x"]); err != nil {
			t.Fatalf("accepted %q as %s but got %#v: %v", value, typ, got["x"], err)
		}
	})
}
