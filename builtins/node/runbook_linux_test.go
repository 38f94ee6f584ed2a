//go:build linux

package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// TestRunbookThroughTheEngine runs a small runbook through the engine's
// wrapper against a live target: records come back as records, the
// handle goes back in as ns=, and the transcript holds no secret.
func TestRunbookThroughTheEngine(t *testing.T) {
	tg := nodetest.Start(t, nodetest.Options{Env: []string{"SECRET_TOKEN=hunter2"}})
	res := engine.Run(context.Background(), "testdata/probe_app.star", engine.Options{
		Specs:  node.Specs(),
		Params: map[string]any{"pid": int64(tg.PID)},
	})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Backtrace)
	}
	var finding, verdict *transcript.Event
	calls := map[string]int{}
	var all strings.Builder
	for _, e := range res.Events {
		b, _ := json.Marshal(e)
		all.Write(b)
		switch e.Type {
		case transcript.TypeFinding:
			finding = e
		case transcript.TypeVerdict:
			verdict = e
		case transcript.TypeCall:
			calls[e.Builtin]++
			if e.Error != nil {
				t.Errorf("%s failed: %s", e.Builtin, e.Error.Message)
			}
		}
	}
	if finding == nil || finding.Summary != "readyz answers 500 from inside the pod (connection refused from the node)" {
		t.Fatalf("finding = %+v", finding)
	}
	var ev map[string]any
	if err := json.Unmarshal(finding.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["config"] != "[default]\n" || ev["token"] != engine.Redacted || len(ev["files"].([]any)) != 2 {
		t.Errorf("evidence = %v", ev)
	}
	if verdict == nil || verdict.Summary != "removed additional_file (exit 0)" {
		t.Errorf("verdict = %+v", verdict)
	}
	if calls["http_probe"] != 2 || calls["enter_ns"] != 1 || calls["run"] != 1 {
		t.Errorf("calls = %v", calls)
	}
	if strings.Contains(all.String(), "hunter2") {
		t.Error("the transcript holds the secret")
	}
}
