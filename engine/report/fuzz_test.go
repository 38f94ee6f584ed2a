package report_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// FuzzReadBuild feeds whatever transcript.Read returns, error or not, to
// report.Build, every renderer and engine.Undo: none may panic.
func FuzzReadBuild(f *testing.F) {
	f.Add([]byte(`{"type":"header","version":1,"runbook":"x.star"}` + "\n" + `{"type":"call","seq":1,"builtin":"w","effect":"write","args":{},"mutation":{"applied":true,"target":"configmap a/b"}}` + "\n" + `{"type":"footer","seq":2,"status":"ok"}` + "\n"))
	f.Add([]byte(`{"type":"header","version":1,"runbook":"x.st`))
	f.Add([]byte(`{"type":"header","version":1}` + "\n" + `{"type":"call","seq":1,"builtin":"w","effect":"write","mutation":{"applied":true}}`))
	f.Add([]byte(`{"type":"header","version":1}` + "\n" + `{"type":"step_end","step":"a"}` + "\n" + `{"type":"finding","severity":"critical","evidence":[1]}` + "\n" + `{"type":"call","seq":1,"builtin":"x","effect":"write","result":{"refused":true},"mutation":"x"}`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, _ := transcript.Read("fuzz.jsonl", bytes.NewReader(data))
		if tr != nil && tr.Header == nil {
			t.Fatalf("Read returned a transcript without a header")
		}
		report.Build(tr)
		for _, f := range report.Formats {
			if err := report.Render(io.Discard, tr, f); err != nil {
				t.Fatalf("render %s: %v", f, err)
			}
		}
		if tr != nil {
			engine.Undo(context.Background(), tr, nil, nil)
		}
	})
}
