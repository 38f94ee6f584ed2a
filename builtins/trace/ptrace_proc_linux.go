//go:build linux && (amd64 || arm64)

package trace

import (
	"bufio"
	"bytes"
	"os"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kdiag/kdiag/engine"
)

// ptraceCheckTarget refuses a pid that does not exist, is a zombie, or is
// kdiag itself.
func ptraceCheckTarget(pid int) error {
	if pid == os.Getpid() {
		return engine.Errorf(engine.KindInvalid, "strace_sample: process %d is kdiag itself", pid)
	}
	st, err := ptraceStatus(pid)
	if err != nil {
		return engine.Errorf(engine.KindGone, "strace_sample: process %d is gone", pid)
	}
	if strings.HasPrefix(st["State"], "Z") || strings.HasPrefix(st["State"], "X") {
		return engine.Errorf(engine.KindGone, "strace_sample: process %d is gone (zombie)", pid)
	}
	return nil
}

// ptraceForbidden explains an EPERM from PTRACE_SEIZE.
func ptraceForbidden(pid int) error {
	if tracer := ptraceTracerOf(pid); tracer > 0 {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(tracer) + "/comm")
		return engine.Errorf(engine.KindConflict, "strace_sample: process %d is already traced by process %d (%s); detach that debugger or strace first",
			pid, tracer, strings.TrimSpace(string(comm)))
	}
	hint := "needs root or CAP_SYS_PTRACE"
	if scope, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		hint += ", and kernel.yama.ptrace_scope is " + strings.TrimSpace(string(scope)) + " (3 forbids all attaching)"
	}
	return engine.Errorf(engine.KindForbidden, "strace_sample: not permitted to trace process %d (%s)", pid, hint)
}

// ptraceStatus reads /proc/PID/status into a map.
func ptraceStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// ptraceTracerOf returns the TracerPid of a thread, 0 when untraced or gone.
func ptraceTracerOf(tid int) int {
	st, err := ptraceStatus(tid)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(st["TracerPid"])
	return n
}

// ptraceState returns the state letter of a thread ('t' in a tracing
// stop), or 0 when it is gone.
func ptraceState(tid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// ptraceTasks lists the thread ids of a process.
func ptraceTasks(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// ptraceNoneTracedBy reports whether no thread of pid is traced by tracer.
func ptraceNoneTracedBy(pid, tracer int) bool {
	tids, _ := ptraceTasks(pid)
	for _, tid := range tids {
		if ptraceTracerOf(tid) == tracer {
			return false
		}
	}
	return true
}

// ptraceWakeSignal is the real-time signal sent to the tracer thread to
// interrupt a wait4 blocked on a quiet target when the sample ends. The Go
// runtime handles it (and ignores it, nobody asks for it); ptraceWakeSetup
// clears its SA_RESTART so that wait4 returns EINTR instead of restarting.
const ptraceWakeSignal = 61

// ptraceSigaction is the kernel's struct sigaction on x86_64 and aarch64.
type ptraceSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const ptraceSARestart = 0x10000000

// ptraceWakeSetup makes ptraceWakeSignal interrupt syscalls. It reports
// false when the signal is not handled by the Go runtime, in which case
// the tracer polls.
func ptraceWakeSetup() bool {
	var act ptraceSigaction
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, ptraceWakeSignal, 0, uintptr(unsafe.Pointer(&act)), 8, 0, 0)
	if e != 0 || act.handler <= 1 { // SIG_DFL would kill us, SIG_IGN would not wake
		return false
	}
	if act.flags&ptraceSARestart == 0 {
		return true
	}
	act.flags &^= ptraceSARestart
	_, _, e = unix.RawSyscall6(unix.SYS_RT_SIGACTION, ptraceWakeSignal, uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	return e == 0
}

// ptraceWake interrupts the tracer thread's wait.
func ptraceWake(tracer int) {
	_ = unix.Tgkill(os.Getpid(), tracer, unix.Signal(ptraceWakeSignal))
}

// ptracePinToTarget runs the tracer thread on the CPU the target last ran
// on. Every syscall stop is a hand-off between tracee and tracer; on one
// CPU it needs no cross-CPU wake-up, which measurably cuts the slowdown of
// a busy target (see docs/performance.md). Errors are ignored (the tracer
// may not be allowed on that CPU); the affinity dies with the thread.
func ptracePinToTarget(pid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return
	}
	// Field 39 (processor) counts from the one after the ")" of comm.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 37 {
		return
	}
	cpu, err := strconv.Atoi(f[36])
	if err != nil {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set)
}
