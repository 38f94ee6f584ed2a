package playbook

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
)

// readCounter counts the reads of each file of an embedded library.
type readCounter struct {
	fstest.MapFS
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) ReadFile(name string) ([]byte, error) {
	c.mu.Lock()
	c.reads[name]++
	c.mu.Unlock()
	return c.MapFS.ReadFile(name)
}

// TestLocalLoadsOnce: a route's run executes the runbook's top level once
// (it used to be loaded to describe it and again to run it).
func TestLocalLoadsOnce(t *testing.T) {
	lib := &readCounter{reads: map[string]int{}, MapFS: fstest.MapFS{"once.star": {Data: []byte(
		"runbook(name = \"once\", summary = \"Logs.\", params = [param(\"pod\")])\ndef main(p):\n    log(p.pod)\n")}}}
	l := &Local{Specs: std.Specs(), Loader: &engine.Loader{Builtin: lib}}
	path := filepath.Join(t.TempDir(), "run.jsonl")
	h, err := l.Start(context.Background(), RunRequest{ID: "r1", Runbook: "@kdiag//once.star",
		Params: map[string]any{"pod": "web-0"}, Policy: Policy{Mutations: MutationsNever}, TranscriptPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if out := h.Wait(); out.Status != StatusOK {
		t.Fatalf("outcome %+v", out)
	}
	if n := lib.reads["once.star"]; n != 1 {
		t.Errorf("the runbook was read (its top level executed) %d times for one run, want 1", n)
	}
}
