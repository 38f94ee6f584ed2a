package engine

import (
	"testing"

	"go.starlark.net/starlark"
)

func TestRecordAccess(t *testing.T) {
	v, err := FromJSON([]byte(`{"status":500,"headers":{"x":"y"},"items":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	thread := &starlark.Thread{}
	for expr, want := range map[string]string{
		`r.status`:              `500`,
		`r["headers"].x`:        `"y"`,
		`r.get("missing", 7)`:   `7`,
		`r.get("status")`:       `500`,
		`sorted(r)`:             `["headers", "items", "status"]`,
		`dict(r)["items"]`:      `[1, 2]`,
		`hasattr(r, "status")`:  `True`,
		`getattr(r, "nope", 0)`: `0`,
		`r == r`:                `True`,
	} {
		got, err := starlark.EvalOptions(FileOptions, thread, "expr", expr, starlark.StringDict{"r": v})
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got.String() != want {
			t.Errorf("%s = %s, want %s", expr, got, want)
		}
	}
	if _, err := starlark.EvalOptions(FileOptions, thread, "expr", "r.nope", starlark.StringDict{"r": v}); err == nil {
		t.Error("r.nope: want an error for a missing field")
	}
}
