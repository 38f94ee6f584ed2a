package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a real pseudo-terminal: the master to read what is
// written to the terminal, the terminal itself to write to.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(filepath.Join("/dev/pts", strconv.Itoa(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// TestColorOnTerminal renders a report to a real terminal: --color=auto
// colours severities and outcomes there, not with $NO_COLOR set, and never
// into a file.
func TestColorOnTerminal(t *testing.T) {
	dir := t.TempDir()
	rb := filepath.Join(dir, "check.star")
	os.WriteFile(rb, []byte(`runbook(name = "check", summary = "Checks.")
def main(p):
    step("check", sleep, "1ms")
    finding("critical", "it is down")
    verdict("down")
`), 0o644)
	rec := filepath.Join(dir, "run.jsonl")
	if _, _, err := runKdiag("run", rb, "--record", rec, "-q"); err != nil {
		t.Fatal(err)
	}
	render := func(w *os.File, args ...string) error {
		cmd := newRootCmd(t.Context())
		cmd.SetArgs(append([]string{"report", rec}, args...))
		cmd.SetOut(w)
		return cmd.Execute()
	}
	readTTY := func(master *os.File) string {
		master.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for !strings.Contains(b.String(), "down\r\n") {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String()
	}

	master, tty := openPTY(t)
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	if err := render(tty); err != nil {
		t.Fatal(err)
	}
	got := readTTY(master)
	if !strings.Contains(got, "\x1b[1;31mCRITICAL\x1b[0m it is down") || !strings.Contains(got, "\x1b[32m✓\x1b[0m check") {
		t.Errorf("--color=auto on a terminal: no colours:\n%q", got)
	}

	t.Setenv("NO_COLOR", "1")
	if err := render(tty); err != nil {
		t.Fatal(err)
	}
	if got := readTTY(master); strings.Contains(got, "\x1b[") || !strings.Contains(got, "CRITICAL it is down") {
		t.Errorf("NO_COLOR=1 on a terminal: got\n%q", got)
	}

	t.Setenv("NO_COLOR", "")
	f, err := os.Create(filepath.Join(dir, "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := render(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(f.Name()); bytes.Contains(b, []byte("\x1b[")) || !bytes.Contains(b, []byte("CRITICAL it is down")) {
		t.Errorf("--color=auto into a file: got\n%q", b)
	}
}
