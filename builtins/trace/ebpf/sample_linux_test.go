//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ourPrograms are the names of kdiag.c's programs, as the kernel keeps
// them (at most 15 bytes).
var ourPrograms = map[string]bool{"sys_enter": true, "sys_exit": true, "process_fork": true, "process_exec": true, "process_exit": true}

// loaded lists, through the bpf() syscall (BPF_PROG_GET_NEXT_ID), the
// BPF programs with one of our names.
func loaded(t *testing.T) map[ebpf.ProgramID]bool {
	t.Helper()
	progs := map[ebpf.ProgramID]bool{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("BPF_PROG_GET_NEXT_ID: %v", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil && ourPrograms[info.Name] {
			progs[id] = true
		}
		p.Close()
	}
	return progs
}

// heldElsewhere returns the ids of the BPF programs other processes hold,
// directly or through a link (the prog_id of their fds' fdinfo): another
// test binary of this repository may be sampling at the same time.
func heldElsewhere() map[ebpf.ProgramID]bool {
	held := map[ebpf.ProgramID]bool{}
	self := strconv.Itoa(os.Getpid())
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name() == self || p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || (target != "anon_inode:bpf-prog" && target != "anon_inode:bpf_link") {
				continue
			}
			info, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name()))
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
					if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
						held[ebpf.ProgramID(id)] = true
					}
				}
			}
		}
	}
	return held
}

// bpfFDs lists this process's file descriptors of BPF objects.
func bpfFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, "anon_inode:bpf") {
			out = append(out, e.Name()+" -> "+target)
		}
	}
	return out
}

// assertUnloaded checks, at the end of a test, that this process holds no
// BPF object (program, map, link) and that every program of ours loaded
// since the start of the test (listed through the bpf() syscall) is gone
// or held by another process (a concurrent test binary). Programs are
// only pinned or attached through an fd or a link, and we pin nothing, so
// a program of ours nobody holds is a leak.
func assertUnloaded(t *testing.T) {
	t.Helper()
	before := loaded(t)
	t.Cleanup(func() {
		if fds := bpfFDs(t); len(fds) > 0 {
			t.Errorf("BPF objects still open: %v", fds)
		}
		var leaked []ebpf.ProgramID
		var held map[ebpf.ProgramID]bool
		for id := range loaded(t) {
			if before[id] {
				continue
			}
			if held == nil {
				held = heldElsewhere()
			}
			if !held[id] {
				leaked = append(leaked, id)
			}
		}
		if len(leaked) > 0 {
			// The kernel frees a program whose last reference went
			// away after an RCU grace period: look again.
			time.Sleep(time.Second)
			now := loaded(t)
			var still []ebpf.ProgramID
			for _, id := range leaked {
				if now[id] && !heldElsewhere()[id] {
					still = append(still, id)
				}
			}
			if len(still) > 0 {
				t.Errorf("programs of ours still loaded after the test, held by no process: %v", still)
			}
		}
	})
}

// start starts a command, killed at the end of the test.
func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	time.Sleep(50 * time.Millisecond)
	return cmd
}

func TestCheck(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatalf("Check on a root kernel 6.x with BTF: %v", err)
	}
	if err := checkCaps(); err != nil {
		t.Fatal(err)
	}
}

// TestSampleShellLoop traces a shell loop that forks and execs: the
// children are followed, paths and argv are captured in the kernel, the
// counters agree with the records.
func TestSampleShellLoop(t *testing.T) {
	assertUnloaded(t)
	missing := filepath.Join(t.TempDir(), "missing.conf")
	sh := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; ls "+missing+" 2>/dev/null; sleep 0.02; done")
	res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, FollowForks: true, Duration: 700 * time.Millisecond, MaxEvents: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != 0 || res.Truncated {
		t.Errorf("dropped %d, truncated %v; want neither", res.Dropped, res.Truncated)
	}
	tgids := map[int]bool{}
	var sawMissing, sawExecArgv bool
	perNr := map[uint32]uint64{}
	for _, c := range res.Calls {
		tgids[c.TGID] = true
		if !c.Finished {
			continue
		}
		perNr[c.Nr]++
		for _, it := range c.Captured {
			if it.Kind == CapturePath && it.Value == missing && c.Ret == -int64(unix.ENOENT) {
				sawMissing = true
			}
			if c.Nr == unix.SYS_EXECVE && it.Kind == CaptureArgv && it.Word == 1 && it.Value == missing {
				sawExecArgv = true
			}
		}
	}
	if !sawMissing {
		t.Errorf("no call on %s failing with ENOENT among %d calls", missing, len(res.Calls))
	}
	if !sawExecArgv {
		t.Errorf("no execve with argv[1] = %s", missing)
	}
	if len(tgids) < 5 {
		t.Errorf("calls of %d processes; want the shell and its children", len(tgids))
	}
	exited := map[int]bool{}
	for _, e := range res.Exits {
		exited[e.TGID] = true
	}
	var procs int
	for _, f := range res.Forks {
		if f.ParentTGID == sh.Process.Pid && !f.Thread {
			procs++
			// A child that ran to its exit made calls (at least its execve).
			// One forked late, or not scheduled yet on a loaded machine, may
			// not have made any.
			if !tgids[f.ChildTGID] && (exited[f.ChildTGID] || f.TimeNS+400e6 < res.EndNS) {
				t.Errorf("child %d of the shell was not followed", f.ChildTGID)
			}
		}
	}
	if procs < 5 || len(res.Execs) < 5 {
		t.Errorf("%d forks and %d execs by the shell; want several", procs, len(res.Execs))
	}
	for _, e := range res.Execs {
		if e.Filename != "/usr/bin/cat" && e.Filename != "/usr/bin/ls" && e.Filename != "/usr/bin/sleep" && e.Filename != "/bin/cat" && e.Filename != "/bin/ls" && e.Filename != "/bin/sleep" {
			t.Errorf("exec of %q (%s)", e.Filename, e.Comm)
		}
	}
	for nr, n := range res.Counts {
		if n.Calls != perNr[nr] {
			t.Errorf("syscall %d: counted %d, %d records", nr, n.Calls, perNr[nr])
		}
	}
}

// TestSampleWithoutFollow keeps to the target's own threads.
func TestSampleWithoutFollow(t *testing.T) {
	assertUnloaded(t)
	sh := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.02; done")
	res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, Duration: 300 * time.Millisecond, MaxEvents: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Calls) == 0 {
		t.Fatal("no calls")
	}
	for _, c := range res.Calls {
		if c.TGID != sh.Process.Pid {
			t.Fatalf("call of process %d (%s) without follow", c.TGID, c.Comm)
		}
	}
}

func TestSampleSyscallFilter(t *testing.T) {
	assertUnloaded(t)
	sh := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.01; done")
	res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, FollowForks: true, Duration: 300 * time.Millisecond,
		MaxEvents: 1000, Syscalls: map[uint32]bool{unix.SYS_OPENAT: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Calls) == 0 {
		t.Fatal("no openat seen")
	}
	for _, c := range res.Calls {
		if c.Nr != unix.SYS_OPENAT {
			t.Fatalf("syscall %d passed a filter of openat", c.Nr)
		}
	}
	for nr := range res.Counts {
		if nr != unix.SYS_OPENAT {
			t.Errorf("syscall %d counted with a filter of openat", nr)
		}
	}
}

func TestSampleMaxEvents(t *testing.T) {
	assertUnloaded(t)
	sh := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; done")
	res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, FollowForks: true, Duration: 300 * time.Millisecond, MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, n := range res.Counts {
		total += n.Calls
	}
	if len(res.Calls) != 10 || !res.Truncated || total <= 10 {
		t.Errorf("%d calls kept, truncated %v, %d counted; want 10, true, more", len(res.Calls), res.Truncated, total)
	}
}

// TestSampleCancel cancels a 10s sample after 100ms.
func TestSampleCancel(t *testing.T) {
	assertUnloaded(t)
	sh := start(t, "sh", "-c", "while :; do sleep 0.01; done")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	begin := time.Now()
	res, err := Sample(ctx, Options{TGIDs: []int{sh.Process.Pid}, FollowForks: true, Duration: 10 * time.Second, MaxEvents: 1000})
	// Loading takes up to 2s on a loaded machine, the sample 10s.
	if took := time.Since(begin); took > 4*time.Second {
		t.Errorf("cancel after 100ms returned after %s", took)
	}
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("err = %v, result %v; want context.Canceled and what was seen", err, res != nil)
	}
}

// TestSampleTargetExits traces a process that exits during the sample.
func TestSampleTargetExits(t *testing.T) {
	assertUnloaded(t)
	// The shell exits after 3s, the sample would last 10s (loading the
	// programs takes up to 2s on a loaded machine).
	sh := start(t, "sh", "-c", "i=0; while [ $i -lt 60 ]; do i=$((i+1)); sleep 0.05; done; exit 7")
	begin := time.Now()
	res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, Duration: 10 * time.Second, MaxEvents: 1 << 20})
	if took := time.Since(begin); took > 6*time.Second {
		t.Errorf("sample of a process exiting after 3s took %s", took)
	}
	if err != nil {
		t.Fatal(err)
	}
	var exited bool
	for _, e := range res.Exits {
		if e.TID == sh.Process.Pid {
			exited = true
			if e.Code != 7<<8 {
				t.Errorf("exit code %#x, want 7<<8", e.Code)
			}
		}
	}
	if !exited {
		t.Errorf("no exit of %d among %+v", sh.Process.Pid, res.Exits)
	}
	var exitGroup bool
	for _, c := range res.Calls {
		if c.Nr == unix.SYS_EXIT_GROUP && !c.Finished && c.Args[0] == 7 {
			exitGroup = true
		}
	}
	if !exitGroup {
		t.Error("no unfinished exit_group(7)")
	}
}

// TestSampleFullRingBuffer fills a one-page ring buffer: records are
// dropped and counted, and the per-CPU counters still count every call.
func TestSampleFullRingBuffer(t *testing.T) {
	assertUnloaded(t)
	yes := start(t, "sh", "-c", "exec yes > /dev/null")
	res, err := Sample(context.Background(), Options{TGIDs: []int{yes.Process.Pid}, Duration: 400 * time.Millisecond, MaxEvents: 1 << 30,
		RingBytes: os.Getpagesize(), ReadDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, n := range res.Counts {
		counted += n.Calls
	}
	var finished uint64
	for _, c := range res.Calls {
		if c.Finished {
			finished++
		}
	}
	if res.Dropped == 0 {
		t.Fatalf("no drops with a one-page ring buffer read after 200ms (%d calls)", counted)
	}
	if counted != finished+res.Dropped {
		t.Errorf("counters: %d calls; records: %d kept + %d dropped = %d", counted, finished, res.Dropped, finished+res.Dropped)
	}
	t.Logf("%d calls counted, %d records kept, %d dropped", counted, finished, res.Dropped)
}

// TestSampleConcurrent runs two samples of two processes at once: each
// sees its own target only.
func TestSampleConcurrent(t *testing.T) {
	assertUnloaded(t)
	a := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.01; done")
	b := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.01; done")
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	for i, pid := range []int{a.Process.Pid, b.Process.Pid} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Sample(context.Background(), Options{TGIDs: []int{pid}, Duration: 400 * time.Millisecond, MaxEvents: 1 << 20})
		}()
	}
	wg.Wait()
	for i, pid := range []int{a.Process.Pid, b.Process.Pid} {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(results[i].Calls) == 0 {
			t.Errorf("sample %d saw nothing", i)
		}
		for _, c := range results[i].Calls {
			if c.TGID != pid {
				t.Fatalf("sample of %d saw a call of %d", pid, c.TGID)
			}
		}
	}
}

func TestSampleErrors(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Duration: time.Second}, "ebpf: no target"},
		{Options{TGIDs: []int{1}}, "ebpf: duration must be positive"},
		{Options{TGIDs: []int{1}, Duration: time.Second, RingBytes: 5000}, "ebpf: ring buffer size 5000 is not a power of two"},
		{Options{TGIDs: []int{1}, Duration: time.Second, Syscalls: map[uint32]bool{9999: true}}, "ebpf: syscall number 9999 out of range"},
	} {
		_, err := Sample(context.Background(), tc.opts)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Sample(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestSampleUnloadsOnPanic: a panic while collecting (here in the context's
// Err, called by the read loop) still unloads everything.
func TestSampleUnloadsOnPanic(t *testing.T) {
	assertUnloaded(t)
	sh := start(t, "sh", "-c", "while :; do sleep 0.01; done")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		Sample(panicContext{context.Background()}, Options{TGIDs: []int{sh.Process.Pid}, Duration: time.Second, MaxEvents: 10})
	}()
}

type panicContext struct{ context.Context }

func (panicContext) Err() error { panic("test panic") }

// BenchmarkAttachDetach measures a whole 1ms sample of an idle process:
// loading and verifying the programs, attaching, detaching, unloading.
func BenchmarkAttachDetach(b *testing.B) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	for i := 0; i < b.N; i++ {
		if _, err := Sample(context.Background(), Options{TGIDs: []int{cmd.Process.Pid}, Duration: time.Millisecond, MaxEvents: 100}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSampleCgroup traces a cgroup v2 of its own (made in the unified
// hierarchy, which this hybrid host mounts with no controllers): the
// processes in it and their children, nothing else; then the cgroup
// disappears during a sample, which ends normally.
func TestSampleCgroup(t *testing.T) {
	assertUnloaded(t)
	mnt, err := Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "kdiag-ebpf-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	sh := exec.Command("sh", "-c", "read x; while :; do cat /etc/hostname >/dev/null; sleep 0.01; done")
	stdin, _ := sh.StdinPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sh.Process.Kill()
		sh.Wait()
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sh.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	id, err := CgroupOf(sh.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := cgroupID(dir); id != want {
		t.Fatalf("CgroupOf = %d, want %d", id, want)
	}
	res, err := Sample(context.Background(), Options{CgroupID: id, Duration: 400 * time.Millisecond, MaxEvents: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	procs := map[int]bool{}
	for _, c := range res.Calls {
		procs[c.TGID] = true
		if c.TGID == os.Getpid() {
			t.Fatal("the test process, outside the cgroup, was traced")
		}
	}
	if !procs[sh.Process.Pid] || len(procs) < 3 {
		t.Errorf("processes traced: %v; want the shell %d and its children", procs, sh.Process.Pid)
	}

	// The cgroup disappears during the sample.
	time.AfterFunc(200*time.Millisecond, func() {
		sh.Process.Kill()
		sh.Wait()
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	if _, err := Sample(context.Background(), Options{CgroupID: id, Duration: 600 * time.Millisecond, MaxEvents: 1 << 20}); err != nil {
		t.Fatalf("sample of a cgroup that disappeared: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("cgroup not removed")
	}
}
