package report

import (
	"encoding/json"
	"testing"
)

func TestUnescapeHTML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"x \u003e 1 \u0026\u0026 y \u003c 2"}`, `{"a":"x > 1 && y < 2"}`},
		// An escaped backslash followed by "u003e" is text, not an escape.
		{`{"a":"C:\\u003e"}`, `{"a":"C:\\u003e"}`},
		{`{"a":"\\\u003e"}`, `{"a":"\\>"}`},
		{`{"a":"\u00e9\n\"q\""}`, `{"a":"\u00e9\n\"q\""}`},
		{`"trailing \`, `"trailing \`},
	} {
		got := string(UnescapeHTML(json.RawMessage(tc.in)))
		if got != tc.want {
			t.Errorf("UnescapeHTML(%s) = %s, want %s", tc.in, got, tc.want)
		}
		// The result means the same as the input.
		var a, b any
		if json.Unmarshal([]byte(tc.in), &a) == nil {
			if err := json.Unmarshal([]byte(got), &b); err != nil || !equalJSON(a, b) {
				t.Errorf("UnescapeHTML(%s) = %s changed the value (%v)", tc.in, got, err)
			}
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
