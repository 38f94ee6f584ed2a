package engine

import (
	"encoding/json"
	"testing"

	"go.starlark.net/starlark"
)

var jsonSeeds = []string{
	`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
	`[1.5,-2,1e3,12345678901234567890123,"\u00e9\n\"x\"","héllo"]`,
	`{}`, `[]`, `""`, `0`, `-0.0`, `{"dup":1,"dup":2}`,
	`{"path":"/opt/config/additional_file","errno":"ENOENT","ret":-2}`,
}

// FuzzDecodeJSON checks the fast decoder against the encoding/json-based
// reference on every input the reference accepts.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			if _, err := decodeJSON(data); err == nil {
				t.Fatalf("fast decoder accepted invalid JSON %q", data)
			}
			return
		}
		want, werr := fromJSONSlow(data)
		got, gerr := decodeJSON(data)
		if werr != nil {
			return
		}
		if gerr != nil {
			t.Fatalf("fast decoder rejected %q: %v", data, gerr)
		}
		if eq, err := starlark.Equal(got, want); err != nil || !eq {
			t.Fatalf("decode %q: fast %s, reference %s", data, got, want)
		}
	})
}

func TestDecodeJSONSeeds(t *testing.T) {
	for _, s := range jsonSeeds {
		got, err := decodeJSON([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		want, _ := fromJSONSlow([]byte(s))
		if eq, _ := starlark.Equal(got, want); !eq {
			t.Errorf("%s: got %s, want %s", s, got, want)
		}
	}
}
