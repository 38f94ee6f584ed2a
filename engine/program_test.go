package engine_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// countingFS counts the reads of each file of an embedded library.
type countingFS struct {
	fstest.MapFS
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.mu.Lock()
	c.reads[name]++
	c.mu.Unlock()
	return c.MapFS.Open(name)
}

func (c *countingFS) ReadFile(name string) ([]byte, error) {
	c.mu.Lock()
	c.reads[name]++
	c.mu.Unlock()
	return c.MapFS.ReadFile(name)
}

func (c *countingFS) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[name]
}

// newCountingLibrary returns a library whose runbook loads a module; the
// runbook's and the module's top levels run once per read.
func newCountingLibrary() *countingFS {
	return &countingFS{reads: map[string]int{}, MapFS: fstest.MapFS{
		"once.star": {Data: []byte(`load("lib.star", "key")
runbook(name = "once", summary = "Reads a value.", params = [param("key", default = "a")])
def main(p):
    read_value(key = key(p))
`)},
		"lib.star": {Data: []byte("def key(p):\n    return p.key\n")},
	}}
}

// TestTopLevelRunsOncePerRun: the path kdiag run and the playbook server
// take (engine.Launch: describe, bind, preflight, transcript, run) reads
// and executes the runbook and its module once, where it used to load
// the runbook for describing and again for running.
func TestTopLevelRunsOncePerRun(t *testing.T) {
	lib := newCountingLibrary()
	w := &world{values: map[string]string{"a": "1"}}
	var checked *engine.Runbook
	out := filepath.Join(t.TempDir(), "once.jsonl")
	res, path, err := engine.Launch{
		Module:  "@kdiag//once.star",
		Options: engine.Options{Specs: w.specs(), Loader: &engine.Loader{Builtin: lib}},
		Preflight: func(_ context.Context, rb *engine.Runbook, params map[string]any) error {
			checked = rb
			if params["key"] != "a" {
				t.Errorf("preflight params %v", params)
			}
			return nil
		},
		TranscriptPath: func(*engine.Runbook) string { return out },
	}.Start(context.Background())
	if err != nil || res.Err != nil {
		t.Fatalf("launch: %v, run: %v", err, res.Err)
	}
	if got := lib.count("once.star"); got != 1 {
		t.Errorf("the runbook was read (and its top level executed) %d times in one run, want 1", got)
	}
	if got := lib.count("lib.star"); got != 1 {
		t.Errorf("its module was read %d times in one run, want 1", got)
	}
	if checked == nil || checked.Builtins[engine.Read][0] != "read_value" {
		t.Errorf("preflight saw %+v, want the runbook with its built-ins", checked)
	}
	tr, err := transcript.ReadFile(path)
	if err != nil || len(tr.Header.Files) != 2 || len(tr.Calls()) != 1 || w.reads != 1 {
		t.Fatalf("transcript %s: %v; files %d calls %d reads %d", path, err, len(tr.Header.Files), len(tr.Calls()), w.reads)
	}
}

// TestProgramRunsTwice: one loaded Program runs twice, each run recording
// its own calls (the built-ins its functions call act for the run that
// calls main, not the one that loaded it), with no second load.
func TestProgramRunsTwice(t *testing.T) {
	lib := newCountingLibrary()
	w := &world{values: map[string]string{"a": "1", "b": "2"}}
	opts := engine.Options{Specs: w.specs(), Loader: &engine.Loader{Builtin: lib}}
	prog, err := engine.Load("@kdiag//once.star", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b"} {
		opts.Params = map[string]any{"key": key}
		res := prog.Run(context.Background(), opts)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		calls := res.Transcript().Calls()
		if len(calls) != 1 || !strings.Contains(string(calls[0].Args), `"key":"`+key+`"`) {
			t.Fatalf("run with key %s recorded %d calls: %s", key, len(calls), calls[0].Args)
		}
	}
	if got := lib.count("once.star"); got != 1 || w.reads != 2 {
		t.Errorf("read %d times for two runs (want 1); %d built-in calls (want 2)", got, w.reads)
	}
	// A built-in called at the top level is still refused.
	lib.MapFS["top.star"] = &fstest.MapFile{Data: []byte("read_value(key = \"a\")\ndef main(p):\n    pass\n")}
	if _, err := engine.Load("@kdiag//top.star", opts); err == nil {
		t.Fatal("a built-in call at the top level loaded")
	}
}
