package report_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// TestReportEscapesControlCharacters: text a workload controls (a log
// line, a finding, a verdict, a step name, an error) carrying terminal
// escapes, carriage returns, newlines that fake a report line, bidi
// overrides and invalid UTF-8 comes out of every format escaped.
func TestReportEscapesControlCharacters(t *testing.T) {
	evil := "ok\x1b[2J\x1b[1;1H\rVerdict\n  all good\u202eevil\x9b\xff"
	tr := &transcript.Transcript{
		Header: &transcript.Event{Type: transcript.TypeHeader, Version: 1, Name: evil, Runbook: "x.star"},
		Events: []*transcript.Event{
			{Type: transcript.TypeStepStart, Step: evil},
			{Type: transcript.TypeCall, Seq: 1, Step: evil, Builtin: "run", Error: &transcript.CallError{Kind: "failed", Message: evil}},
			{Type: transcript.TypeFinding, Severity: "critical", Summary: evil},
			{Type: transcript.TypePrint, Message: evil},
			{Type: transcript.TypeVerdict, Summary: evil},
		},
		Footer: &transcript.Event{Type: transcript.TypeFooter, Status: "failed", Message: evil},
	}
	for _, f := range []string{"text", "markdown"} {
		var b bytes.Buffer
		if err := report.Render(&b, tr, f); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, bad := range []string{"\x1b", "\r", "\u202e", "\x9b", "\xff", "\n  all good"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s report contains %q:\n%s", f, bad, out)
			}
		}
		if !strings.Contains(out, `ok\x1b[2J\x1b[1;1H\rVerdict\n  all good\u202eevil\x9b\xff`) {
			t.Errorf("%s report does not show the escaped text:\n%s", f, out)
		}
	}
}
