package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// TestHeapWatchdog runs a runbook that doubles a string forever (it would
// end in "fatal error: out of memory") with a 256 MiB heap limit: the
// run stops with an error naming the watchdog, the transcript on disk is
// complete (footer, status failed), and the process's peak heap stays
// within a few doublings of the limit.
func TestHeapWatchdog(t *testing.T) {
	dir := t.TempDir()
	rb := filepath.Join(dir, "hog.star")
	os.WriteFile(rb, []byte(`
runbook(name = "hog", summary = "Doubles a string without end.")

def main(p):
    s = "x"
    for i in range(64):
        s = s + s
        if i == 3:
            log("growing")
    verdict("never")
`), 0o644)
	path := filepath.Join(dir, "t.jsonl")
	w, err := transcript.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	const limit = 64 << 20
	var peak uint64
	res := engine.Run(context.Background(), rb, engine.Options{Writer: w, MaxHeapBytes: limit})
	w.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak = ms.HeapSys
	if res.Err == nil || !strings.Contains(res.Err.Error(), "heap watchdog: the heap reached") {
		t.Fatalf("run error %v, want the heap watchdog's", res.Err)
	}
	tr, err := transcript.ReadFile(path)
	if err != nil || tr.Footer.Status != transcript.StatusFailed || !strings.Contains(tr.Footer.Message, "heap watchdog") {
		t.Fatalf("transcript %v footer %+v, want complete with status failed", err, tr)
	}
	t.Logf("stopped with: %v; heap reserved from the OS: %d MiB", res.Err, peak>>20)
	// The runbook doubles its string, so the heap jumps by the size of the
	// last allocation between two checks of the watchdog (on a loaded
	// machine a check may come one doubling late): the bound is what
	// stops it at all, against 2^64 bytes without the watchdog.
	if peak > 16*limit {
		t.Errorf("the heap grew to %d MiB under a %d MiB limit", peak>>20, limit>>20)
	}
}
