package transcript

import (
	"encoding/json"
	"strconv"
)

// decodeEvent decodes one transcript line. Call, step, finding, print and
// verdict lines, the bulk of a transcript, are decoded by a small strict
// scanner without reflection; anything it does not know for certain
// (other fields, escapes, non-ASCII, null, odd numbers) goes to
// encoding/json, which also produces every error. FuzzDecodeEvent checks
// that both agree.
func decodeEvent(b []byte, e *Event) error {
	if fastDecode(b, e) {
		return nil
	}
	*e = Event{}
	return json.Unmarshal(b, e)
}

type scanner struct {
	b []byte
	i int
}

func fastDecode(b []byte, e *Event) bool {
	s := &scanner{b: b}
	s.space()
	return s.object(func(key string) bool { return s.field(key, e) }) && s.end()
}

// object scans {"key": value, ...}, letting member read each value; keys
// must be plain strings.
func (s *scanner) object(member func(key string) bool) bool {
	if !s.byte('{') {
		return false
	}
	s.space()
	if s.byte('}') {
		return true
	}
	for {
		s.space()
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.space()
		if !s.byte(':') {
			return false
		}
		s.space()
		if !member(key) {
			return false
		}
		s.space()
		if s.byte(',') {
			continue
		}
		return s.byte('}')
	}
}

func (s *scanner) field(key string, e *Event) bool {
	var ok bool
	switch key {
	case "type":
		e.Type, ok = s.str()
	case "step":
		e.Step, ok = s.str()
	case "pos":
		e.Pos, ok = s.str()
	case "builtin":
		e.Builtin, ok = s.str()
	case "effect":
		e.Effect, ok = s.str()
	case "dry_run":
		e.DryRun, ok = s.str()
	case "status":
		e.Status, ok = s.str()
	case "severity":
		e.Severity, ok = s.str()
	case "summary":
		e.Summary, ok = s.str()
	case "message":
		e.Message, ok = s.str()
	case "seq":
		e.Seq, ok = s.integer()
	case "calls":
		e.Calls, ok = s.integer()
	case "at_ms":
		e.AtMS, ok = s.float()
	case "duration_ms":
		e.DurationMS, ok = s.float()
	case "args":
		e.Args, ok = s.raw()
	case "result":
		e.Result, ok = s.raw()
	case "mutation":
		e.Mutation, ok = s.raw()
	case "evidence":
		e.Evidence, ok = s.raw()
	case "error":
		ok = s.callError(e)
	}
	return ok
}

// callError decodes {"kind": "...", "message": "..."}, merging into an
// existing error as encoding/json does for a repeated key.
func (s *scanner) callError(e *Event) bool {
	if s.i < len(s.b) && s.b[s.i] == '{' && e.Error == nil {
		e.Error = &CallError{}
	}
	return s.object(func(key string) bool {
		var ok bool
		switch key {
		case "kind":
			e.Error.Kind, ok = s.str()
		case "message":
			e.Error.Message, ok = s.str()
		}
		return ok
	})
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// plainString reads a string of printable ASCII without escapes.
func (s *scanner) plainString() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(s.b[start : s.i-1]), true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
		s.i++
	}
	return "", false
}

func (s *scanner) str() (string, bool) { return s.plainString() }

// integer reads an optionally negative run of digits without leading zeros.
func (s *scanner) integer() (int, bool) {
	start := s.i
	if !s.number() {
		return 0, false
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	return n, err == nil
}

func (s *scanner) float() (float64, bool) {
	start := s.i
	if !s.number() {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return f, err == nil
}

// number scans a JSON number.
func (s *scanner) number() bool {
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.digits() == 0:
		return false
	}
	if s.byte('.') && s.digits() == 0 {
		return false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.byte('+') {
			s.byte('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// raw captures one JSON value (not null) after checking it, as
// json.RawMessage receives it.
func (s *scanner) raw() (json.RawMessage, bool) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return nil, false // null: leave it to encoding/json
	}
	if !s.skip(0) {
		return nil, false
	}
	return append(json.RawMessage(nil), s.b[start:s.i]...), true
}

// skip checks and passes one JSON value.
func (s *scanner) skip(depth int) bool {
	if depth > 1000 || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		s.space()
		if s.byte('}') {
			return true
		}
		for {
			s.space()
			if !s.skipString() {
				return false
			}
			s.space()
			if !s.byte(':') {
				return false
			}
			s.space()
			if !s.skip(depth + 1) {
				return false
			}
			s.space()
			if s.byte(',') {
				continue
			}
			return s.byte('}')
		}
	case c == '[':
		s.i++
		s.space()
		if s.byte(']') {
			return true
		}
		for {
			s.space()
			if !s.skip(depth + 1) {
				return false
			}
			s.space()
			if s.byte(',') {
				continue
			}
			return s.byte(']')
		}
	case c == '"':
		return s.skipString()
	case c == 't':
		return s.word("true")
	case c == 'f':
		return s.word("false")
	case c == 'n':
		return s.word("null")
	}
	return s.number()
}

func (s *scanner) word(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// skipString passes a string with valid escapes and no control bytes.
// Other bytes, UTF-8 or not, are kept verbatim, as json.RawMessage does.
func (s *scanner) skipString() bool {
	if !s.byte('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}
