package transcript_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/transcript"
)

// TestLineSizeLimit reads a transcript file whose second line is 64 MiB
// against a 1 MiB MaxLineBytes: a CorruptError naming the line, and the
// reader's heap never holds the line.
func TestLineSizeLimit(t *testing.T) {
	old := transcript.MaxLineBytes
	transcript.MaxLineBytes = 1 << 20
	defer func() { transcript.MaxLineBytes = old }()
	path := filepath.Join(t.TempDir(), "t.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"type":"header","version":1,"runbook":"x.star"}` + "\n" + `{"type":"print","message":"`)
	chunk := strings.Repeat("a", 1<<20)
	for i := 0; i < 64; i++ {
		f.WriteString(chunk)
	}
	f.WriteString(`"}` + "\n")
	f.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr, err := transcript.ReadFile(path)
	runtime.ReadMemStats(&after)
	var ce *transcript.CorruptError
	if !errors.As(err, &ce) || ce.Line != 2 || !strings.Contains(err.Error(), "over 1048576 bytes") || tr != nil {
		t.Fatalf("got %v, %v; want a CorruptError for line 2", tr, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("reading allocated %d MiB for a 64 MiB line, want it cut at the 1 MiB limit", grew>>20)
	}
}
