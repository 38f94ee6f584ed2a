//go:build linux && (amd64 || arm64)

package trace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

var straceTargetBuild struct {
	once sync.Once
	path string
	err  error
}

// straceTargetPath builds testdata/strace_target once per test binary.
func straceTargetPath(t testing.TB) string {
	t.Helper()
	b := &straceTargetBuild
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "kdiag-strace-target-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "strace_target")
		out, err := exec.Command("go", "build", "-o", b.path, "./testdata/strace_target").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build strace_target: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// straceStart starts a target and waits until it runs its loop. The
// target is SIGKILLed at the end of the test.
func straceStart(t testing.TB, name string, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // kept open: "quiet" blocks reading it
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	if name != "sh" && !sc.Scan() {
		t.Fatalf("%s %v did not start", name, args)
	}
	return cmd, sc
}

// straceRunSpec runs strace_sample with args, on the ptrace backend
// unless args name another.
func straceRunSpec(ctx context.Context, args engine.Args) (*Result, error) {
	if !args.Has("backend") {
		args["backend"] = "ptrace"
	}
	s := Spec()
	v, err := s.Run(ctx, &engine.Call{Spec: s, Args: args})
	if err != nil {
		return nil, err
	}
	return v.(*Result), nil
}

// straceAssertFree fails unless no thread of pid is traced or in a
// tracing stop.
func straceAssertFree(t *testing.T, pid int) {
	t.Helper()
	tids, err := ptraceTasks(pid)
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	for _, tid := range tids {
		st, err := ptraceStatus(tid)
		if err != nil {
			continue // exited meanwhile
		}
		if strings.HasPrefix(st["State"], "t") || st["TracerPid"] != "0" {
			t.Errorf("thread %d of %d after strace_sample: State %q TracerPid %s", tid, pid, st["State"], st["TracerPid"])
		}
	}
}

func straceMissingPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "missing-config.yaml")
}

func TestStraceSampleSeesMissingPath(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", path)
	pid := cmd.Process.Pid

	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "500ms"})
	if err != nil {
		t.Fatal(err)
	}
	straceAssertFree(t, pid)
	if !res.Detached || res.PID != pid || res.AttachedThreads < 1 || res.Exited {
		t.Errorf("pid %d detached %v attached_threads %d exited %v", res.PID, res.Detached, res.AttachedThreads, res.Exited)
	}
	if res.DurationMS < 450 || res.DurationMS > 2000 {
		t.Errorf("duration_ms = %d, want about 500", res.DurationMS)
	}
	quoted := strconv.Quote(path)
	var statENOENT, openOK bool
	for _, ev := range res.Events {
		switch {
		case (ev.Name == "newfstatat" || ev.Name == "statx" || ev.Name == "stat") && len(ev.Args) > 1 && straceContains(ev.Args, quoted):
			if ev.Errno == "ENOENT" && ev.Ret != nil && *ev.Ret == -2 {
				statENOENT = true
			} else if ev.Ret != nil { // one still in progress when the sample ended has no result
				t.Errorf("stat of the missing path: %+v", ev)
			}
		case ev.Name == "openat" && len(ev.Args) == 4 && ev.Args[1] == `"/etc/hostname"`:
			if ev.Args[0] != "AT_FDCWD" || ev.Args[2] != "O_RDONLY|O_CLOEXEC" || ev.Ret == nil || *ev.Ret < 0 || ev.Errno != "" {
				t.Errorf("openat of /etc/hostname: %+v", ev)
			}
			openOK = true
		}
	}
	if !statENOENT || !openOK {
		t.Errorf("stat ENOENT seen %v, openat /etc/hostname seen %v in %d events", statENOENT, openOK, len(res.Events))
	}
	var file *File
	for i := range res.Files {
		if res.Files[i].Path == path {
			file = &res.Files[i]
		}
	}
	if file == nil || !straceContains(file.Results, "ENOENT") || file.Calls < 10 {
		t.Errorf("files entry for %s: %+v", path, file)
	}
	calls := map[string]SummaryRow{}
	total := 0
	for _, s := range res.Summary {
		calls[s.Syscall] = s
		total += s.Calls
	}
	if st := calls["newfstatat"]; st.Calls < 10 || st.Errors < 10 {
		t.Errorf("summary newfstatat = %+v", st)
	}
	if total != res.TotalEvents || total < 50 {
		t.Errorf("summary counts %d calls, total_events %d", total, res.TotalEvents)
	}
	for i := 1; i < len(res.Summary); i++ {
		if res.Summary[i].TotalUS > res.Summary[i-1].TotalUS {
			t.Errorf("summary not sorted by time: %+v before %+v", res.Summary[i-1], res.Summary[i])
		}
	}
}

func TestStraceSampleFilterAndLimit(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", path)
	res, err := straceRunSpec(context.Background(), engine.Args{
		"pid": int64(cmd.Process.Pid), "duration": "300ms", "syscalls": []any{"openat", "close"}, "max_events": int64(5),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 5 || !res.Truncated || res.TotalEvents <= 5 {
		t.Errorf("%d events, truncated %v, total %d; want 5, true, more", len(res.Events), res.Truncated, res.TotalEvents)
	}
	for _, s := range res.Summary {
		if s.Syscall != "openat" && s.Syscall != "close" {
			t.Errorf("summary has %s with syscalls=[openat, close]", s.Syscall)
		}
	}
	straceAssertFree(t, cmd.Process.Pid)
}

func TestStraceSampleCancel(t *testing.T) {
	for _, mode := range []string{"stat", "quiet"} {
		t.Run(mode, func(t *testing.T) {
			cmd, _ := straceStart(t, straceTargetPath(t), mode, straceMissingPath(t))
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			_, err := straceRunSpec(ctx, engine.Args{"pid": int64(cmd.Process.Pid), "duration": "10s"})
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("cancel after 100ms of a 10s sample returned after %s", took)
			}
			if engine.KindOf(err) != engine.KindCancelled || !strings.HasPrefix(err.Error(), "strace_sample: cancelled") {
				t.Errorf("err = %v (kind %s), want a cancelled error", err, engine.KindOf(err))
			}
			straceAssertFree(t, cmd.Process.Pid)
			st, _ := ptraceStatus(cmd.Process.Pid)
			if s := st["State"]; !strings.HasPrefix(s, "S") && !strings.HasPrefix(s, "R") {
				t.Errorf("target state after cancel = %q, want running or sleeping", s)
			}
		})
	}
}

func TestStraceSampleQuietTargetEndsOnTime(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "quiet")
	start := time.Now()
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("300ms sample of a blocked process took %s", took)
	}
	if !res.Detached {
		t.Error("not detached")
	}
	straceAssertFree(t, cmd.Process.Pid)
}

func TestStraceSampleThreads(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "threads", "4", path)
	pid := cmd.Process.Pid
	time.Sleep(50 * time.Millisecond) // let the threads start
	before, _ := ptraceTasks(pid)

	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	straceAssertFree(t, pid)
	if res.AttachedThreads < len(before) || res.AttachedThreads < 5 {
		t.Errorf("attached_threads = %d, process had %d threads", res.AttachedThreads, len(before))
	}
	statters := map[int]bool{}
	for _, ev := range res.Events {
		if ev.Name == "newfstatat" && straceContains(ev.Args, strconv.Quote(path)) {
			statters[ev.TID] = true
		}
	}
	if len(statters) < 4 {
		t.Errorf("stat of %s seen from %d threads, want 4", path, len(statters))
	}
	if !res.Detached {
		t.Error("not detached")
	}
}

func TestStraceSampleFollowForks(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "fork", path)
	pid := cmd.Process.Pid
	for _, follow := range []bool{true, false} {
		res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "3s", "follow_forks": follow, "backend": "ptrace"})
		if err != nil {
			t.Fatal(err)
		}
		straceAssertFree(t, pid)
		children := map[int]bool{}
		for _, ev := range res.Events {
			if ev.Name == "newfstatat" && straceContains(ev.Args, strconv.Quote(path+".child")) {
				children[ev.TID] = true
			}
		}
		if follow && len(children) < 2 {
			t.Errorf("follow_forks=True: stat by children seen from %d processes, want several", len(children))
		}
		if !follow && len(children) > 0 {
			t.Errorf("follow_forks=False: saw children's syscalls from %v", children)
		}
		var execs int
		for _, ev := range res.Events {
			if ev.Name == "execve" && ev.Errno == "" && len(ev.Args) == 3 && strings.Contains(ev.Args[1], `"child"`) {
				execs++
			}
		}
		if follow && execs == 0 {
			t.Error("follow_forks=True: no successful execve of the child seen")
		}
		if !res.Detached {
			t.Errorf("follow_forks=%v: not detached", follow)
		}
	}
}

func TestStraceSampleProcessExits(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "exit-after", "300ms", path)
	start := time.Now()
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("sample of a process exiting after 300ms took %s", took)
	}
	if !res.Exited || !res.Detached {
		t.Errorf("exited %v detached %v, want both", res.Exited, res.Detached)
	}
	var exitGroup bool
	for _, ev := range res.Events {
		if ev.Name == "exit_group" && len(ev.Args) == 1 && ev.Args[0] == "3" && ev.Ret == nil {
			exitGroup = true
		}
	}
	if !exitGroup {
		t.Error("exit_group(3) not seen as an unfinished call")
	}
	// The exit status still reaches the real parent.
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("target wait: %v, want exit status 3", err)
	}
}

func TestStraceSampleStoppedProcessStaysStopped(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", straceMissingPath(t))
	pid := cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGSTOP)
	// Every thread, not only the leader, must be in the group-stop before
	// attaching: a thread still running would stop after the attach.
	tids, _ := ptraceTasks(pid)
	for _, tid := range tids {
		straceWaitState(t, tid, "T")
	}
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "200ms"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Detached {
		t.Error("not detached")
	}
	straceAssertFree(t, pid)
	// A thread detached from a group-stop gets its SIGSTOP again: it may
	// show R for the moment it takes to stop again, never for longer (a
	// process that was let run would not stop by itself).
	straceWaitState(t, pid, "T")
	syscall.Kill(pid, syscall.SIGCONT)
	straceWaitState(t, pid, "S", "R")
}

func straceWaitState(t *testing.T, pid int, states ...string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		st, _ := ptraceStatus(pid)
		for _, s := range states {
			if strings.HasPrefix(st["State"], s) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := ptraceStatus(pid)
	t.Fatalf("process %d State %q, want %v", pid, st["State"], states)
}

func TestStraceSampleErrors(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gonePID := cmd.Process.Pid
	for _, tc := range []struct {
		args engine.Args
		kind engine.Kind
		msg  string
	}{
		{engine.Args{"pid": int64(gonePID)}, engine.KindGone, fmt.Sprintf("strace_sample: process %d is gone", gonePID)},
		{engine.Args{"pid": int64(os.Getpid())}, engine.KindInvalid, "strace_sample: process " + strconv.Itoa(os.Getpid()) + " is kdiag itself"},
		{engine.Args{"pid": int64(1), "syscalls": []any{"openat", "nosuchcall"}}, engine.KindInvalid, "strace_sample: unknown syscall name(s): nosuchcall"},
		{engine.Args{"pid": int64(0)}, engine.KindInvalid, "strace_sample: pid must be positive, got 0"},
	} {
		_, err := straceRunSpec(context.Background(), tc.args)
		if engine.KindOf(err) != tc.kind || err.Error() != tc.msg {
			t.Errorf("%v: err = %v (kind %s), want %q (kind %s)", tc.args, err, engine.KindOf(err), tc.msg, tc.kind)
		}
	}
}

func TestStraceSampleAlreadyTraced(t *testing.T) {
	straceBinary(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "quiet")
	pid := cmd.Process.Pid
	tracer := exec.Command("strace", "-qq", "-o", "/dev/null", "-p", strconv.Itoa(pid))
	if err := tracer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tracer.Process.Signal(os.Interrupt); tracer.Wait() }()
	for i := 0; i < 200 && ptraceTracerOf(pid) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "100ms"})
	want := fmt.Sprintf("strace_sample: process %d is already traced by process %d (strace)", pid, tracer.Process.Pid)
	if engine.KindOf(err) != engine.KindConflict || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want %q...", err, want)
	}
}

func straceContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// straceBinary fails the test when the real strace is missing.
func straceBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace is not installed (apt-get install strace): the comparison tests need it: %v", err)
	}
	return p
}

func TestStraceSampleSeesWhatStraceSees(t *testing.T) {
	strace := straceBinary(t)
	// A steady single-threaded loop: every iteration makes the same syscalls.
	cmd, _ := straceStart(t, "sh", "-c", `while :; do [ -e /nonexistent-kdiag ]; read x < /etc/hostname; done`)
	pid := cmd.Process.Pid
	time.Sleep(50 * time.Millisecond)

	out := filepath.Join(t.TempDir(), "strace.out")
	tracer := exec.Command(strace, "-f", "-qq", "-e", "trace=all", "-o", out, "-p", strconv.Itoa(pid))
	if err := tracer.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	tracer.Process.Signal(os.Interrupt)
	tracer.Wait()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	straceNames := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := straceLineRE.FindStringSubmatch(line); m != nil {
			straceNames[m[1]] = true
		}
	}
	straceAssertFree(t, pid)

	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{}
	for _, s := range res.Summary {
		ours[s.Syscall] = true
	}
	var missing []string
	for name := range straceNames {
		if !ours[name] {
			missing = append(missing, name)
		}
	}
	t.Logf("strace saw %v; strace_sample saw %v", syscallSortedKeys(straceNames), syscallSortedKeys(ours))
	if len(straceNames) < 3 || len(missing) > 0 {
		t.Errorf("strace saw %v; strace_sample saw %v; missing %v", syscallSortedKeys(straceNames), syscallSortedKeys(ours), missing)
	}
	straceAssertFree(t, pid)
}

// straceLineRE matches the syscall name of a line of strace -f output.
var straceLineRE = regexp.MustCompile(`^(?:\[pid\s+\d+\]\s+|\d+\s+)?([a-z0-9_]+)\(`)

func TestStraceSampleDeliversSignals(t *testing.T) {
	cmd, sc := straceStart(t, straceTargetPath(t), "signals")
	pid := cmd.Process.Pid
	var n atomic.Int32
	go func() {
		for sc.Scan() {
			if sc.Text() == "usr1" {
				n.Add(1)
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "duration": "300ms"})
	}()
	// 30 signals, spread over the sample and past its end, so that some
	// arrive while the tracer detaches.
	for i := 0; i < 30; i++ {
		syscall.Kill(pid, syscall.SIGUSR1)
		time.Sleep(15 * time.Millisecond)
	}
	<-done
	// Standard signals coalesce (in the kernel and in the Go runtime of the
	// target), untraced too: allow a few to merge, not to vanish.
	for i := 0; i < 100 && n.Load() < 30; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if got := n.Load(); got < 25 {
		t.Errorf("target handled %d of 30 SIGUSR1: signals lost while traced or detaching", got)
	}
	straceAssertFree(t, pid)
}

func TestStraceSampleDeliversFatalSignal(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", straceMissingPath(t))
	time.AfterFunc(200*time.Millisecond, func() { cmd.Process.Signal(syscall.SIGTERM) })
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || !res.Detached || res.DurationMS > 3000 {
		t.Errorf("exited %v detached %v duration_ms %d: want the sample to end with the process", res.Exited, res.Detached, res.DurationMS)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("target wait: %v, want killed by SIGTERM", err)
	}
}

func TestStraceSampleDetachesOnPanic(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "threads", "3", straceMissingPath(t))
	stops := 0
	ptraceTestHook = func() {
		if stops++; stops == 200 {
			panic("injected")
		}
	}
	defer func() { ptraceTestHook = nil }()
	_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "5s"})
	if err == nil || !strings.HasPrefix(err.Error(), "strace_sample: internal error while tracing process") || !strings.HasSuffix(err.Error(), "(detached: true): injected") {
		t.Errorf("err = %v", err)
	}
	straceAssertFree(t, cmd.Process.Pid)
	if st, _ := ptraceStatus(cmd.Process.Pid); !strings.HasPrefix(st["State"], "S") && !strings.HasPrefix(st["State"], "R") {
		t.Errorf("target state after the panic: %q", st["State"])
	}
}
