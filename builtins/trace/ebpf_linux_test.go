//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// TestBackendsAgree traces a corpus of real programs with both backends,
// one after the other: every syscall ptrace saw at least 3 times and every
// file ptrace saw twice, eBPF sees too, and the calls on the missing path
// (and connect/bind) decode to the same arguments (pointers aside). Other differences are
// listed in the log, and so are syscalls only ptrace causes (ptraceInduced).
func TestBackendsAgree(t *testing.T) {
	target := straceTargetPath(t)
	for _, tc := range []struct {
		name string
		cmd  func(missing string) []string
	}{
		{"net-http-server", func(m string) []string { return []string{target, "http", m} }},
		{"shell-loop", func(m string) []string {
			return []string{"sh", "-c", "while :; do cat /etc/hostname >/dev/null; ls " + m + " 2>/dev/null; sleep 0.02; done"}
		}},
		{"fork-exec", func(m string) []string { return []string{target, "fork", m} }},
		{"threads", func(m string) []string { return []string{target, "threads", "4", m} }},
		{"stat-loop", func(m string) []string { return []string{target, "stat", m} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing := straceMissingPath(t)
			argv := tc.cmd(missing)
			cmd, _ := straceStart(t, argv[0], argv[1:]...)
			// Warm up (a shell hashes where it found its commands), and
			// trace with eBPF first: what happens only at first, eBPF sees.
			time.Sleep(500 * time.Millisecond)
			run := func(backend string) *Result {
				res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "1s", "backend": backend})
				if err != nil {
					t.Fatalf("%s: %v", backend, err)
				}
				if res.Backend != backend || res.BackendReason != "requested" {
					t.Errorf("backend %q (%s), want %q requested", res.Backend, res.BackendReason, backend)
				}
				return res
			}
			eb := run("ebpf")
			pt := run("ptrace")
			if eb.Dropped != 0 {
				t.Errorf("eBPF dropped %d records", eb.Dropped)
			}
			ptCalls, ebCalls := summaryCalls(pt), summaryCalls(eb)
			var missingSyscalls, onlyPtrace, onlyEBPF []string
			for name, n := range ptCalls {
				switch {
				case ebCalls[name] > 0:
				case n >= 3 && !ptraceInduced[name]:
					missingSyscalls = append(missingSyscalls, name)
				default:
					onlyPtrace = append(onlyPtrace, name)
				}
			}
			for name := range ebCalls {
				if ptCalls[name] == 0 {
					onlyEBPF = append(onlyEBPF, name)
				}
			}
			if len(missingSyscalls) > 0 {
				t.Errorf("syscalls ptrace saw 3+ times that eBPF did not: %v", missingSyscalls)
			}
			ptFiles, ebFiles := fileCalls(pt), fileCalls(eb)
			var missingFiles []string
			for p, n := range ptFiles {
				if ebFiles[p] == 0 && n >= 2 {
					missingFiles = append(missingFiles, p)
				}
			}
			if len(missingFiles) > 0 {
				t.Errorf("files ptrace saw twice that eBPF did not: %v", missingFiles)
			}
			ptArgs, ebArgs := argsOn(pt, missing), argsOn(eb, missing)
			if len(ptArgs) == 0 || len(ebArgs) == 0 {
				t.Errorf("calls on %s: ptrace %v, eBPF %v; want some in both", missing, ptArgs, ebArgs)
			}
			for call := range ptArgs {
				if !ebArgs[call] {
					t.Errorf("ptrace decoded %s, eBPF did not (eBPF: %v)", call, ebArgs)
				}
			}
			t.Logf("decoded calls ptrace made that eBPF matched: %d, e.g. %v", len(ptArgs), firstKey(ptArgs))
			sort.Strings(onlyPtrace)
			sort.Strings(onlyEBPF)
			t.Logf("%d/%d calls (ptrace/eBPF), %d/%d files; syscalls only ptrace saw (<3 times): %v; only eBPF saw: %v",
				pt.TotalEvents, eb.TotalEvents, len(ptFiles), len(ebFiles), onlyPtrace, onlyEBPF)
		})
	}
}

// ptraceInduced are syscalls a Go program or a shell makes because ptrace
// slows it down or interrupts it: the Go runtime preempts goroutines that
// ran too long with signals (tgkill, rt_sigreturn, rt_sigprocmask,
// sigaltstack) and starts threads for blocked ones (clone3, mmap, rseq,
// set_robust_list...); a syscall interrupted by a ptrace stop restarts.
var ptraceInduced = map[string]bool{"restart_syscall": true, "rt_sigprocmask": true, "rt_sigreturn": true,
	"tgkill": true, "getpid": true, "gettid": true, "sigaltstack": true, "clone3": true, "clone": true, "mmap": true,
	"munmap": true, "mprotect": true, "madvise": true, "rseq": true, "set_robust_list": true, "sched_yield": true, "futex": true,
	// exit_group never returns: ptrace reports it unfinished at the exit
	// event; eBPF only sends a record at sys_exit, so the call of a
	// process that exits is sometimes lost (counted, not decoded).
	"exit_group": true, "exit": true}

func firstKey(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 3 {
		keys = keys[:3]
	}
	return keys
}

func summaryCalls(res *Result) map[string]int {
	m := map[string]int{}
	for _, s := range res.Summary {
		m[s.Syscall] = s.Calls
	}
	return m
}

func fileCalls(res *Result) map[string]int {
	m := map[string]int{}
	for _, f := range res.Files {
		m[f.Path] = f.Calls
	}
	return m
}

var hexPointer = regexp.MustCompile(`0x[0-9a-f]{6,}`)

// argsOn returns the decoded calls naming path, and the connect and bind
// calls (their socket addresses), pointers masked, with their result.
func argsOn(res *Result, path string) map[string]bool {
	m := map[string]bool{}
	for _, e := range res.Events {
		line := strings.Join(e.Args, ", ")
		sock := e.Name == "connect" || e.Name == "bind"
		if (!strings.Contains(line, path) && !sock) || e.Ret == nil {
			continue
		}
		if sock && len(e.Args) > 0 {
			line = "FD, " + strings.Join(e.Args[1:], ", ") // fd numbers differ between runs
		}
		m[e.Name+"("+hexPointer.ReplaceAllString(line, "PTR")+") = "+e.Errno] = true
	}
	return m
}

// TestBackendSelection: auto picks eBPF here and says why; a bad backend
// is refused.
func TestBackendSelection(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", straceMissingPath(t))
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "200ms", "backend": "auto"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend != "ebpf" || !strings.HasPrefix(res.BackendReason, "auto: eBPF available") {
		t.Errorf("auto ran %q (%s), want ebpf", res.Backend, res.BackendReason)
	}
	if !res.Detached || res.TotalEvents == 0 || len(res.Files) == 0 {
		t.Errorf("eBPF result: detached %v, %d events, %d files", res.Detached, res.TotalEvents, len(res.Files))
	}
	_, err = straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "duration": "200ms", "backend": "bpf"})
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), `strace_sample: backend must be "auto", "ebpf" or "ptrace", got "bpf"`) {
		t.Errorf("backend=bpf: %v", err)
	}
	if b, reason, err := chooseBackend(""); b != "ebpf" || err != nil {
		t.Errorf("default backend %q (%s), %v", b, reason, err)
	}
}

// TestEBPFSampleSpec runs strace_sample on eBPF: filter and max_events,
// summary exact beyond the events kept, cancellation, a target that exits.
func TestEBPFSampleSpec(t *testing.T) {
	path := straceMissingPath(t)
	cmd, _ := straceStart(t, straceTargetPath(t), "stat", path)
	res, err := straceRunSpec(context.Background(), engine.Args{
		"pid": int64(cmd.Process.Pid), "duration": "300ms", "syscalls": []any{"openat", "close"}, "max_events": int64(5), "backend": "ebpf",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 5 || !res.Truncated || res.TotalEvents <= 5 {
		t.Errorf("%d events, truncated %v, total %d; want 5, true, more", len(res.Events), res.Truncated, res.TotalEvents)
	}
	total := 0
	for _, s := range res.Summary {
		total += s.Calls
		if s.Syscall != "openat" && s.Syscall != "close" {
			t.Errorf("summary has %s with syscalls=[openat, close]", s.Syscall)
		}
	}
	if total != res.TotalEvents {
		t.Errorf("summary counts %d, total_events %d", total, res.TotalEvents)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = straceRunSpec(ctx, engine.Args{"pid": int64(cmd.Process.Pid), "duration": "10s", "backend": "ebpf"})
	if engine.KindOf(err) != engine.KindCancelled || !strings.HasPrefix(err.Error(), "strace_sample: cancelled") {
		t.Errorf("cancel: %v (kind %s)", err, engine.KindOf(err))
	}

	// Loading the programs takes up to 2s on a busy machine.
	exiting, _ := straceStart(t, straceTargetPath(t), "exit-after", "2500ms", path)
	start := time.Now()
	res, err = straceRunSpec(context.Background(), engine.Args{"pid": int64(exiting.Process.Pid), "duration": "10s", "backend": "ebpf", "max_events": int64(1 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); !res.Exited || took > 5*time.Second {
		t.Errorf("exited %v after %s; want true, early", res.Exited, took)
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
}
