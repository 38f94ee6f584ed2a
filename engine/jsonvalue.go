package engine

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"

	"go.starlark.net/starlark"
)

// decodeJSON is a direct JSON-to-Starlark decoder, the hot path of replay:
// it builds records, lists and numbers without the intermediate any tree.
// It accepts what encoding/json produces; anything else is an error.
func decodeJSON(b []byte) (starlark.Value, error) {
	d := &jdec{b: b}
	d.space()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, d.errorf("trailing data")
	}
	return v, nil
}

type jdec struct {
	b []byte
	i int
}

const maxJSONDepth = 10000

func (d *jdec) errorf(format string, args ...any) error {
	return fmt.Errorf("json at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *jdec) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jdec) value(depth int) (starlark.Value, error) {
	if depth > maxJSONDepth {
		return nil, d.errorf("nested too deeply")
	}
	if d.i >= len(d.b) {
		return nil, d.errorf("unexpected end")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, err := d.str()
		return starlark.String(s), err
	case c == 't':
		return starlark.True, d.literal("true")
	case c == 'f':
		return starlark.False, d.literal("false")
	case c == 'n':
		return starlark.None, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, d.errorf("unexpected %q", d.b[d.i])
}

func (d *jdec) literal(word string) error {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return d.errorf("bad literal")
	}
	d.i += len(word)
	return nil
}

func (d *jdec) object(depth int) (starlark.Value, error) {
	d.i++ // {
	fields := map[string]starlark.Value{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return NewRecord(fields), nil
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.errorf("want an object key")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errorf("want ':'")
		}
		d.i++
		d.space()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		fields[k] = v
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errorf("unterminated object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return NewRecord(fields), nil
		default:
			return nil, d.errorf("want ',' or '}'")
		}
	}
}

func (d *jdec) array(depth int) (starlark.Value, error) {
	d.i++ // [
	var elems []starlark.Value
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return starlark.NewList(elems), nil
	}
	for {
		d.space()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, v)
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errorf("unterminated array")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return starlark.NewList(elems), nil
		default:
			return nil, d.errorf("want ',' or ']'")
		}
	}
}

// str decodes a string; strings without escapes or control or non-ASCII
// bytes are sliced directly, others go through encoding/json.
func (d *jdec) str() (string, error) {
	start := d.i
	d.i++ // "
	plain := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if plain {
				return string(d.b[start+1 : d.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				return "", d.errorf("bad string: %v", err)
			}
			return s, nil
		case c == '\\':
			plain = false
			d.i += 2
			continue
		case c < 0x20:
			return "", d.errorf("control character in string")
		case c >= 0x80:
			plain = false
		}
		d.i++
	}
	return "", d.errorf("unterminated string")
}

func (d *jdec) number() (starlark.Value, error) {
	start := d.i
	integral, ok := d.scanNumber()
	if !ok {
		return nil, d.errorf("bad number %q", d.b[start:d.i])
	}
	s := string(d.b[start:d.i])
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return starlark.MakeInt64(n), nil
		}
		if n, ok := new(big.Int).SetString(s, 10); ok {
			return starlark.MakeBigInt(n), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, d.errorf("bad number %q", s)
	}
	return starlark.Float(f), nil
}

// scanNumber passes a number in JSON's grammar and says whether it has
// neither fraction nor exponent.
func (d *jdec) scanNumber() (integral, ok bool) {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		return false, false
	}
	integral = true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		integral = false
		if digits() == 0 {
			return false, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		integral = false
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false, false
		}
	}
	return integral, true
}
