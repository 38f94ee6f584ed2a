package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Args are a call's bound arguments in JSON form: string, int64, float64,
// bool, nil, []any and map[string]any. The wrapper has checked each value
// against its Param's type, so the accessors do not fail on a declared name.
type Args map[string]any

// Has reports whether name was given or has a default.
func (a Args) Has(name string) bool {
	v, ok := a[name]
	return ok && v != nil
}

// String returns a string argument, or "" when absent.
func (a Args) String(name string) string {
	s, _ := a[name].(string)
	return s
}

// Int returns an integer argument, or 0 when absent.
func (a Args) Int(name string) int64 {
	switch v := a[name].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	case json.Number:
		i, _ := v.Int64()
		return i
	}
	return 0
}

// Float returns a numeric argument, or 0 when absent.
func (a Args) Float(name string) float64 {
	switch v := a[name].(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	case json.Number:
		f, _ := v.Float64()
		return f
	}
	return 0
}

// Bool returns a boolean argument, or false when absent.
func (a Args) Bool(name string) bool {
	b, _ := a[name].(bool)
	return b
}

// Duration returns a duration argument ("2s", "1m30s" or seconds as a
// number), or 0 when absent.
func (a Args) Duration(name string) time.Duration {
	d, _ := parseDuration(a[name])
	return d
}

// Strings returns a list-of-strings argument; a single string becomes a
// one-element list.
func (a Args) Strings(name string) []string {
	switch v := a[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// Map returns a dict argument, or nil when absent.
func (a Args) Map(name string) map[string]any {
	m, _ := a[name].(map[string]any)
	return m
}

// ArgsOf returns v (any value that marshals to a JSON object: a result, a
// struct, a map) in the JSON form a runbook passes to a built-in, as when a
// runbook hands a record it got back to another built-in.
func ArgsOf(v any) (Args, error) {
	m, ok := copyJSON(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%T is not a JSON object", v)
	}
	return m, nil
}

// Decode fills the struct pointed to by v from the arguments through JSON,
// using the struct's json tags.
func (a Args) Decode(v any) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case string:
		return time.ParseDuration(x)
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("not a finite number")
		}
		return time.Duration(x * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("got %T, want a duration like \"2s\"", v)
}

// checkType reports whether the JSON-form value v fits the declared type.
func checkType(typ string, v any) error {
	if v == nil {
		return nil
	}
	ok := true
	switch typ {
	case "", "any":
	case "string":
		_, ok = v.(string)
	case "int":
		_, ok = v.(int64)
	case "float":
		switch v.(type) {
		case int64, float64:
		default:
			ok = false
		}
	case "bool":
		_, ok = v.(bool)
	case "list":
		switch v.(type) {
		case []any, string:
		default:
			ok = false
		}
	case "dict":
		_, ok = v.(map[string]any)
	case "duration":
		if _, err := parseDuration(v); err != nil {
			return fmt.Errorf("want a duration like \"2s\" or a number of seconds, got %s", TypeName(v))
		}
	default:
		return fmt.Errorf("unknown parameter type %q", typ)
	}
	if !ok {
		return fmt.Errorf("want %s, got %s", typ, TypeName(v))
	}
	return nil
}

// TypeName names the Starlark type of a JSON-form value (string, int,
// float, bool, list, dict, None) for error messages.
func TypeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	case nil:
		return "None"
	}
	return fmt.Sprintf("%T", v)
}
