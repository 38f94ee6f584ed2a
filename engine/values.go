package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Record is the Starlark value of a JSON object returned by a built-in:
// fields by attribute (r.status) or by index (r["status"]), iterable over
// its keys, convertible with dict(r).
type Record struct {
	keys   []string
	fields map[string]starlark.Value
}

var (
	_ starlark.HasAttrs        = (*Record)(nil)
	_ starlark.IterableMapping = (*Record)(nil)
	_ starlark.Comparable      = (*Record)(nil)
)

// NewRecord returns a Record with the given fields, keys sorted.
func NewRecord(fields map[string]starlark.Value) *Record {
	return &Record{keys: slices.Sorted(maps.Keys(fields)), fields: fields}
}

// String returns the record in Starlark struct syntax.
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("record(")
	for i, k := range r.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(" = ")
		b.WriteString(r.fields[k].String())
	}
	b.WriteString(")")
	return b.String()
}

// Type returns "record".
func (r *Record) Type() string { return "record" }

// Freeze freezes the record's fields.
func (r *Record) Freeze() {
	for _, v := range r.fields {
		v.Freeze()
	}
}

// Truth reports whether the record has any field.
func (r *Record) Truth() starlark.Bool { return len(r.keys) > 0 }

// Hash fails: records are not hashable.
func (r *Record) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: record") }

// Attr returns the field name, or nil (no such attribute) when absent. A
// record also has the method get(name, default=None), as a dict does,
// unless it has a field named get.
func (r *Record) Attr(name string) (starlark.Value, error) {
	if v, ok := r.fields[name]; ok {
		return v, nil
	}
	if name == "get" {
		return starlark.NewBuiltin("get", r.get), nil
	}
	return nil, nil
}

func (r *Record) get(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key string
	var def starlark.Value = starlark.None
	if err := starlark.UnpackPositionalArgs("get", args, kwargs, 1, &key, &def); err != nil {
		return nil, err
	}
	if v, ok := r.fields[key]; ok {
		return v, nil
	}
	return def, nil
}

// AttrNames returns the field names.
func (r *Record) AttrNames() []string { return r.keys }

// Get returns the field named by k, like a dict.
func (r *Record) Get(k starlark.Value) (starlark.Value, bool, error) {
	s, ok := k.(starlark.String)
	if !ok {
		return nil, false, fmt.Errorf("record keys are strings, got %s", k.Type())
	}
	v, found := r.fields[string(s)]
	return v, found, nil
}

// Items returns the fields as key/value pairs.
func (r *Record) Items() []starlark.Tuple {
	out := make([]starlark.Tuple, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, starlark.Tuple{starlark.String(k), r.fields[k]})
	}
	return out
}

// Iterate iterates over the field names.
func (r *Record) Iterate() starlark.Iterator {
	l := make([]starlark.Value, len(r.keys))
	for i, k := range r.keys {
		l[i] = starlark.String(k)
	}
	return starlark.NewList(l).Iterate()
}

// Len returns the number of fields.
func (r *Record) Len() int { return len(r.keys) }

// CompareSameType compares records for equality, field by field.
func (r *Record) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	o := y.(*Record)
	switch op {
	case syntax.EQL, syntax.NEQ:
		eq := len(r.keys) == len(o.keys)
		for i := 0; eq && i < len(r.keys); i++ {
			if r.keys[i] != o.keys[i] {
				eq = false
				break
			}
			e, err := starlark.EqualDepth(r.fields[r.keys[i]], o.fields[o.keys[i]], depth-1)
			if err != nil {
				return false, err
			}
			eq = e
		}
		return eq == (op == syntax.EQL), nil
	}
	return false, fmt.Errorf("%s %s %s not supported", r.Type(), op, y.Type())
}

// FromJSON decodes JSON into the Starlark value a runbook sees: objects
// become records, arrays lists, integral numbers ints.
func FromJSON(data []byte) (starlark.Value, error) {
	if len(data) == 0 {
		return starlark.None, nil
	}
	return decodeJSON(data)
}

// fromJSONSlow is the reference decoder decodeJSON is tested against.
func fromJSONSlow(data []byte) (starlark.Value, error) {
	if len(data) == 0 {
		return starlark.None, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return fromGo(v)
}

func fromGo(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(x), nil
	case string:
		return starlark.String(x), nil
	case json.Number:
		if i, ok := new(big.Int).SetString(string(x), 10); ok {
			return starlark.MakeBigInt(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return starlark.Float(f), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case float64:
		return starlark.Float(x), nil
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case map[string]any:
		fields := make(map[string]starlark.Value, len(x))
		for k, e := range x {
			sv, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			fields[k] = sv
		}
		return NewRecord(fields), nil
	}
	return nil, fmt.Errorf("cannot convert %T to a Starlark value", v)
}

// ToGo converts a Starlark value to its JSON form (see Args). Dicts need
// string keys; functions and other opaque values are refused.
func ToGo(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.String:
		return string(x), nil
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			return i, nil
		}
		return nil, fmt.Errorf("integer %s is too large", x)
	case starlark.Float:
		return float64(x), nil
	case *Record:
		m := make(map[string]any, len(x.keys))
		for _, k := range x.keys {
			g, err := ToGo(x.fields[k])
			if err != nil {
				return nil, err
			}
			m[k] = g
		}
		return m, nil
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		x.ToStringDict(d)
		m := make(map[string]any, len(d))
		for k, e := range d {
			g, err := ToGo(e)
			if err != nil {
				return nil, err
			}
			m[k] = g
		}
		return m, nil
	case *starlark.Dict:
		m := make(map[string]any, x.Len())
		for _, it := range x.Items() {
			k, ok := it[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict keys must be strings, got %s", it[0].Type())
			}
			g, err := ToGo(it[1])
			if err != nil {
				return nil, err
			}
			m[string(k)] = g
		}
		return m, nil
	case starlark.Indexable: // list, tuple
		out := make([]any, x.Len())
		for i := 0; i < x.Len(); i++ {
			g, err := ToGo(x.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
		return out, nil
	case *starlark.Set:
		var out []any
		it := x.Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := ToGo(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot pass a %s to a built-in", v.Type())
}

// normalize turns the output of json.Unmarshal with UseNumber into the
// JSON form of Args (int64 and float64 instead of json.Number).
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}
