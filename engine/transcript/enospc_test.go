package transcript_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// TestHeaderCutShortByFullDisk writes a transcript onto a 16 KiB tmpfs so
// that the header (carrying a 64 KiB runbook source) is cut short by
// ENOSPC, as on a full disk; reading it must give a CorruptError naming
// the cut header, and nothing downstream may panic.
func TestHeaderCutShortByFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount a tmpfs (the project's tests run as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "transcript.jsonl")
	w, err := transcript.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := &transcript.Event{Type: transcript.TypeHeader, Version: transcript.Version, Runbook: "big.star", Start: &now,
		Files: []transcript.File{{Path: "big.star", Source: strings.Repeat("# padding\n", 6600)}}}
	err = w.Append(h, true)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append header on a full tmpfs: got %v, want ENOSPC", err)
	}
	w.Close()
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		t.Fatalf("want a partial header on disk, got %v, %v", st, err)
	}
	tr, err := transcript.ReadFile(path)
	var ce *transcript.CorruptError
	if !errors.As(err, &ce) || tr != nil {
		t.Fatalf("read cut header: got %v, %v; want a CorruptError and no transcript", tr, err)
	}
	if !strings.Contains(err.Error(), "header is cut short") {
		t.Errorf("error does not say what happened: %v", err)
	}
	report.Build(tr) // must not panic on what Read returned
}
