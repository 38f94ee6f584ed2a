package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// TestSignalCancelsRun sends SIGINT to a real kdiag process in the middle
// of a step: it must stop promptly with exit code 130 and leave a complete
// transcript whose footer says cancelled.
func TestSignalCancelsRun(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kdiag")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rb := filepath.Join(dir, "slow.star")
	os.WriteFile(rb, []byte("def main(p):\n    step('before', now)\n    step('wait', sleep, '60s')\n    log('not reached')\n"), 0o644)
	tp := filepath.Join(dir, "run.jsonl")
	cmd := exec.Command(bin, "run", rb, "--record", tp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(tp)
		if strings.Contains(string(b), `"step":"wait"`) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the run never reached the wait step:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCancelled {
		t.Fatalf("exit = %v, want %d", err, exitCancelled)
	}
	if d := time.Since(sent); d > 5*time.Second {
		t.Fatalf("took %s to stop after SIGINT", d)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatalf("transcript: %v", err)
	}
	if tr.Footer.Status != transcript.StatusCancelled {
		t.Fatalf("footer status %q, want cancelled", tr.Footer.Status)
	}
	last := tr.Calls()[len(tr.Calls())-1]
	if last.Builtin != "sleep" || last.Error == nil || last.Error.Kind != "cancelled" {
		t.Fatalf("last call %+v, want a cancelled sleep", last)
	}
}
