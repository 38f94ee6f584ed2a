package transcript

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the reader: it must never panic, and
// every failure must be one of the named kinds.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"type":"header","version":1,"runbook":"x.star"}` + "\n" + `{"type":"call","seq":1,"builtin":"now","args":{}}` + "\n" + `{"type":"footer","seq":2,"status":"ok"}` + "\n"))
	f.Add([]byte(`{"type":"header","version":2}`))
	f.Add([]byte(`{"type":"call"`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Read("fuzz.jsonl", bytes.NewReader(data))
		if err == nil {
			if tr.Header == nil || tr.Footer == nil {
				t.Fatalf("no error but header=%v footer=%v", tr.Header, tr.Footer)
			}
			return
		}
		var ce *CorruptError
		var ve *VersionError
		if !errors.As(err, &ce) && !errors.As(err, &ve) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("unnamed error kind: %T %v", err, err)
		}
	})
}
