//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// straceHelperEnv makes TestStraceHelperProcess run testdata/strace_app.star
// against the PID it holds.
const straceHelperEnv = "KDIAG_STRACE_HELPER_PID"

// TestStraceHelperProcess is not a test of its own: run by
// straceInHelper in a re-executed test binary, it runs the runbook
// testdata/strace_app.star (which calls strace_sample) through the engine
// and prints the run's events as JSON. A nodetest target is a child of the
// test process, which waits for it; the kernel reports the ptrace stops of
// such a child to that wait, so it must be traced from another process.
func TestStraceHelperProcess(t *testing.T) {
	pid, err := strconv.Atoi(os.Getenv(straceHelperEnv))
	if err != nil {
		return // not the helper
	}
	res := engine.Run(context.Background(), "testdata/strace_app.star", engine.Options{
		Specs:  []*engine.Spec{Spec()},
		Params: map[string]any{"pid": int64(pid)},
	})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Backtrace)
	}
	b, _ := json.Marshal(res.Events)
	fmt.Printf("EVENTS %s\n", b)
}

// straceInHelper runs testdata/strace_app.star against pid in a helper
// process and returns the run's events.
func straceInHelper(t *testing.T, pid int) []*transcript.Event {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStraceHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), straceHelperEnv+"="+strconv.Itoa(pid))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, "EVENTS "); ok {
			var evs []*transcript.Event
			if err := json.Unmarshal([]byte(j), &evs); err != nil {
				t.Fatal(err)
			}
			return evs
		}
	}
	t.Fatalf("helper printed no events:\n%s", out)
	return nil
}

// TestStraceSampleSeesSeedAppStatx runs a runbook calling strace_sample
// through the engine against the seed incident's broken app, PID 1 of its
// own namespaces, which checks /opt/config/additional_file with statx(2)
// every second: the file exists, so statx returns 0.
func TestStraceSampleSeesSeedAppStatx(t *testing.T) {
	tg := nodetest.Start(t, nodetest.Options{})
	var finding, verdict string
	var res *Result
	for _, e := range straceInHelper(t, tg.PID) {
		switch e.Type {
		case transcript.TypeFinding:
			finding = e.Summary
		case transcript.TypeVerdict:
			verdict = e.Summary + e.Message
		case transcript.TypeCall:
			if e.Builtin != "strace_sample" || res != nil {
				t.Fatalf("unexpected call %s", e.Builtin)
			}
			if err := json.Unmarshal(e.Result, &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	straceAssertFree(t, tg.PID)
	if res == nil {
		t.Fatal("no strace_sample call recorded")
	}
	var seen *File
	for i, f := range res.Files {
		if f.Path == nodetest.ConfigDir+"/additional_file" {
			seen = &res.Files[i]
		}
	}
	if seen == nil || !straceContains(seen.Syscalls, "statx") || !straceContains(seen.Results, "0") || seen.Calls < 2 {
		t.Errorf("files entry for additional_file = %+v; files: %+v", seen, res.Files)
	}
	if res.AttachedThreads < 2 || !res.Detached || res.PID != tg.PID {
		t.Errorf("pid %d attached_threads %d detached %v", res.PID, res.AttachedThreads, res.Detached)
	}
	if finding != "the app keeps checking /opt/config/additional_file, which exists" || !strings.HasSuffix(verdict, "detached=True") {
		t.Errorf("finding %q\nverdict %q", finding, verdict)
	}
	// The app still works: removing the file makes it log the change.
	if err := tg.RemoveFile(); err != nil {
		t.Fatal(err)
	}
}

// TestStraceSampleRefusesStolenStops checks the error when the target is a
// child of this process that this process waits for. Whether the blocked
// Wait takes one of the trace stops before strace_sample's own wait does is
// up to the kernel, so a few attempts are allowed; every attempt must leave
// the target untraced.
func TestStraceSampleRefusesStolenStops(t *testing.T) {
	for attempt := 1; attempt <= 6; attempt++ {
		cmd, _ := straceStart(t, straceTargetPath(t), "stat", straceMissingPath(t))
		pid := cmd.Process.Pid
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "1s"})
		// Detached either way: the target still runs until killed.
		if ptraceTracerOf(pid) != 0 {
			t.Fatalf("attempt %d: target still traced", attempt)
		}
		stolen := engine.KindOf(err) == engine.KindConflict && strings.Contains(err.Error(), "taken by another wait in kdiag")
		if err != nil && !stolen {
			t.Fatalf("attempt %d: err = %v (kind %s), want nil or a conflict", attempt, err, engine.KindOf(err))
		}
		// Kill and reap: a stolen stop ended the Wait early, so reap directly too.
		syscall.Kill(pid, syscall.SIGKILL)
		<-waited
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		if stolen {
			return
		}
	}
	t.Error("in 6 attempts the waiting goroutine never took a trace stop, so the conflict was never seen")
}

// straceEPERMEnv makes TestStraceHelperProcess, run unprivileged, try to
// trace the PID it holds and print the error.
const straceEPERMEnv = "KDIAG_STRACE_EPERM_PID"

func TestStraceSampleForbiddenWithoutPrivilege(t *testing.T) {
	if pid, err := strconv.Atoi(os.Getenv(straceEPERMEnv)); err == nil {
		_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "100ms"})
		fmt.Printf("KIND %s\nERROR %v\n", engine.KindOf(err), err)
		return
	}
	cmd, _ := straceStart(t, straceTargetPath(t), "quiet")
	// Run this test binary again as nobody, from a directory nobody can read.
	dir, err := os.MkdirTemp("", "kdiag-eperm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "trace.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(bin, "-test.run=^TestStraceSampleForbiddenWithoutPrivilege$", "-test.count=1")
	helper.Env = append(os.Environ(), straceEPERMEnv+"="+strconv.Itoa(cmd.Process.Pid))
	helper.Dir = dir
	helper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := helper.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := fmt.Sprintf("KIND forbidden\nERROR strace_sample: not permitted to trace process %d (needs root or CAP_SYS_PTRACE", cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Errorf("unprivileged strace_sample printed:\n%s\nwant %q...", out, want)
	}
	straceAssertFree(t, cmd.Process.Pid)
}
