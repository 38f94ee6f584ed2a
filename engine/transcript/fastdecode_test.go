package transcript

import (
	"encoding/json"
	"reflect"
	"testing"
)

var eventSeeds = []string{
	`{"type":"call","seq":2,"at_ms":31.575,"step":"inspect","pos":"x.star:12:22","builtin":"read_value","effect":"read","args":{"key":"x","missing_ok":false},"result":{"key":"x","password":"\u003credacted\u003e","value":"bad"},"duration_ms":0.002}`,
	`{"type":"call","seq":7,"builtin":"w","effect":"write","args":{},"result":{"applied":true},"mutation":{"applied":true,"before":"bad","target":"value x"},"dry_run":"client"}`,
	`{"type":"call","seq":3,"builtin":"get","args":{"k":"é"},"error":{"kind":"not_found","message":"get: no"}}`,
	`{"type":"finding","seq":5,"severity":"critical","summary":"s","evidence":[1,2.5e3,"a\"b",null,true]}`,
	`{"type":"step_end","seq":3,"status":"failed","message":"x"}`,
	`{"type":"footer","seq":10,"duration_ms":41.436,"status":"ok","calls":2}`,
	`{"type":"print","message":"caf\u00e9 ok"}`,
	`{"type":"call","error":{"kind":"a"},"error":{"message":"b"}}`,
	`{"seq":01}`, `{"seq":1.5}`, `{"seq":-0}`, `{"at_ms":1e400}`, `{"args":null}`, `{"Type":"call"}`, `{"type":"x"} x`,
	`{"args":{"a":[1,{"b":"\ud83d\ude00"}]}}`, `{"result":"\x"}`, `{"result":"\u12"}`, `{}`, ` { "type" : "call" } `,
}

// FuzzDecodeEvent checks the fast event decoder against encoding/json:
// whenever it accepts a line, encoding/json accepts it too and decodes
// the very same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Event
		if !fastDecode(b, &fast) {
			return
		}
		var want Event
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json says %v", b, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("decode %q:\nfast %+v\njson %+v", b, fast, want)
		}
	})
}

func TestFastDecodeTakesTheCommonLines(t *testing.T) {
	for _, s := range eventSeeds[:6] {
		var e Event
		if !fastDecode([]byte(s), &e) {
			t.Errorf("fast path refused a common line: %s", s)
		}
	}
}
