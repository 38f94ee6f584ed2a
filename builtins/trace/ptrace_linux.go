//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kdiag/kdiag/engine"
)

// How long detaching may take before strace_sample gives up waiting for a
// thread to stop (a thread in uninterruptible sleep cannot stop). The
// tracer thread then exits, and the kernel detaches what it still traces.
const ptraceDetachTimeout = 3 * time.Second

// How long attaching waits for every seized thread to report its first
// stop. A stop not reported by then was taken by another wait (or the
// machine is very busy: 200 ms was seen to be too short at load 18).
const ptraceFirstStopWait = 2 * time.Second

// ptraceSyscallInfo is struct ptrace_syscall_info (PTRACE_GET_SYSCALL_INFO,
// Linux 5.3), identical on every 64-bit architecture.
type ptraceSyscallInfo struct {
	Op   uint8
	_    [3]uint8
	Arch uint32
	IP   uint64
	SP   uint64
	// Data is entry {nr, args[6]} or exit {rval, is_error}.
	Data [8]uint64
}

// ptraceThread is one traced thread.
type ptraceThread struct {
	tid     int
	pid     int         // its thread group
	call    *straceCall // entered, not yet returned
	stopped bool        // in a ptrace-stop we have not resumed
	sig     int         // signal of the signal-delivery-stop it is in
}

// ptraceSession is one strace_sample. All of its methods run on the
// tracer goroutine, which is locked to its OS thread: ptrace requests are
// only accepted from the thread that attached.
type ptraceSession struct {
	opts      straceOptions
	rec       *straceRecorder
	threads   map[int]*ptraceThread
	traced    int // threads ever traced
	attached  int
	exited    bool
	detaching bool
	poll      bool // no wake signal: poll wait4 instead of blocking
	self      int
	stop      atomic.Bool
	scope     *scope
	procs     map[int]*Process // by host PID
	lastScan  time.Time
}

// straceSample traces opts.PID for opts.Duration or until ctx is done.
func straceSample(ctx context.Context, opts straceOptions) (*Result, error) {
	if err := ptraceCheckTarget(opts.PID); err != nil {
		return nil, err
	}
	sc, err := newScope(opts.Scope, opts.PID)
	if err != nil {
		return nil, err
	}
	s := &ptraceSession{opts: opts, threads: map[int]*ptraceThread{}, self: os.Getpid(), scope: sc, procs: map[int]*Process{}}
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	started := make(chan int, 1)
	trace := func() {
		res, err := s.run(started)
		done <- outcome{res, err}
	}
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked: it exits with this goroutine, and
		// the kernel detaches whatever it might still trace. The main
		// thread cannot exit, so when we landed on it, trace from another.
		if unix.Gettid() == os.Getpid() {
			inner := make(chan struct{})
			go func() {
				runtime.LockOSThread()
				trace()
				close(inner)
			}()
			<-inner
			runtime.UnlockOSThread()
			return
		}
		trace()
	}()

	var tracer int
	select {
	case tracer = <-started:
	case o := <-done:
		return o.res, o.err
	}
	timer := time.NewTimer(opts.Duration)
	defer timer.Stop()
	if opts.started != nil {
		opts.started()
	}
	// A scope's new members are looked for every scopeRescan: wake the
	// tracer's wait that often.
	var rescan <-chan time.Time
	if s.scope != nil {
		t := time.NewTicker(scopeRescan)
		defer t.Stop()
		rescan = t.C
	}
	var cancelled error
wait:
	for {
		select {
		case o := <-done:
			return o.res, o.err
		case <-timer.C:
			break wait
		case <-opts.stop:
			break wait
		case <-rescan:
			ptraceWake(tracer)
		case <-ctx.Done():
			cancelled = ctx.Err()
			break wait
		}
	}
	s.stop.Store(true)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		// Interrupt a wait4 blocked on a quiet target; repeated in case
		// the signal arrived just before the tracer entered wait4.
		ptraceWake(tracer)
		select {
		case o := <-done:
			switch {
			case o.err != nil || cancelled == nil:
				return o.res, o.err
			case errors.Is(cancelled, context.DeadlineExceeded):
				return nil, engine.Errorf(engine.KindTimeout, "strace_sample: timed out after %dms (detached from process %d: %v)",
					o.res.DurationMS, opts.PID, o.res.Detached)
			default:
				return nil, engine.Errorf(engine.KindCancelled, "strace_sample: cancelled after %dms (detached from process %d: %v)",
					o.res.DurationMS, opts.PID, o.res.Detached)
			}
		case <-tick.C:
		}
	}
}

// run attaches, traces until stopped, and detaches on every path,
// including a panic.
func (s *ptraceSession) run(started chan<- int) (res *Result, err error) {
	defer func() {
		p := recover()
		detached := s.detachAll()
		switch {
		case p != nil:
			res, err = nil, fmt.Errorf("strace_sample: internal error while tracing process %d (detached: %v): %v", s.opts.PID, detached, p)
		case err == nil:
			res = s.rec.result()
			res.PID = s.opts.PID
			res.DurationMS = time.Since(s.rec.start).Milliseconds()
			res.AttachedThreads = s.attached
			res.Threads = s.traced
			res.Exited = s.exited
			res.Detached = detached && s.noneTraced()
			res.Processes = s.processes()
			res.Scope, res.ScopeBy = ScopeProcess, "pid"
			if s.scope != nil {
				res.Scope, res.ScopeBy = s.scope.name, s.scope.by
			}
		}
	}()
	s.poll = !ptraceWakeSetup()
	s.rec = newStraceRecorder(time.Now(), s.opts.MaxEvents, s.opts.Filter)
	s.rec.keepAll = s.opts.keepAll
	s.rec.until, s.rec.untilPaths = s.opts.until, s.opts.UntilPaths
	if err := s.attach(); err != nil {
		return nil, err
	}
	if err := s.awaitFirstStops(); err != nil {
		return nil, err
	}
	ptracePinToTarget(s.opts.PID)
	started <- unix.Gettid()
	s.loop()
	return nil, nil
}

// attach seizes every thread of the process (and, with a scope, of every
// process in it), and interrupts each so that it reports a first stop.
func (s *ptraceSession) attach() error {
	if err := s.attachProcess(s.opts.PID, true); err != nil {
		return err
	}
	if len(s.threads) == 0 {
		return engine.Errorf(engine.KindGone, "strace_sample: process %d is gone", s.opts.PID)
	}
	s.scan()
	s.attached = len(s.threads)
	return nil
}

// scan attaches the scope's processes that are not traced yet: those
// running at the start, and those that joined the container or pod since
// without being created by a traced process (kubectl exec, for one).
func (s *ptraceSession) scan() {
	s.lastScan = time.Now()
	if s.scope == nil {
		return
	}
	for _, pid := range s.scope.members() {
		if s.procs[pid] == nil {
			_ = s.attachProcess(pid, false)
		}
	}
}

// attachProcess seizes every thread of pid, repeating until no new thread
// shows up. Being refused the first process of the sample is an error;
// later ones are skipped.
func (s *ptraceSession) attachProcess(pid int, first bool) error {
	options := unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACEEXIT
	if s.opts.FollowForks || s.scope != nil {
		options |= unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK
	}
	s.noteProcess(pid, 0, 0)
	tried := map[int]bool{}
	for round := 0; round < 50; round++ {
		tids, err := ptraceTasks(pid)
		if err != nil {
			break
		}
		added := 0
		for _, tid := range tids {
			if tried[tid] {
				continue
			}
			tried[tid] = true
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, uintptr(options), 0, 0)
			switch {
			case e == 0:
			case e == unix.ESRCH:
				continue
			case e == unix.EPERM && ptraceTracerOf(tid) == s.self:
				// Already ours: created by a seized thread and attached by the kernel.
			case e == unix.EPERM && first && len(s.threads) == 0:
				return ptraceForbidden(pid)
			case e == unix.EPERM:
				continue
			case first:
				return fmt.Errorf("strace_sample: PTRACE_SEIZE thread %d of process %d: %w", tid, pid, e)
			default:
				continue
			}
			s.add(tid).pid = pid
			_ = ptraceRequest(unix.PTRACE_INTERRUPT, tid, 0)
			added++
		}
		if added == 0 {
			break
		}
	}
	return nil
}

// awaitFirstStops handles the stop each seized thread reports after
// PTRACE_INTERRUPT. A thread in a tracing stop that was never reported to
// the tracer had it taken by another wait in this process: the kernel
// reports the stops of a child traced by its own parent's process to any
// of that process's waits (kdiag waiting for a child it started).
func (s *ptraceSession) awaitFirstStops() error {
	heard := map[int]bool{}
	deadline := time.Now().Add(ptraceFirstStopWait)
	for len(heard) < len(s.threads) && time.Now().Before(deadline) {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOTHREAD|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return nil // nothing left to report: all gone
		case tid == 0:
			time.Sleep(100 * time.Microsecond)
		default:
			heard[tid] = true
			s.handle(tid, ws)
		}
	}
	for tid := range s.threads {
		if !heard[tid] && ptraceState(tid) == 't' {
			return engine.Errorf(engine.KindConflict, "strace_sample: the ptrace stops of thread %d of process %d are taken by another wait in kdiag "+
				"(a child of kdiag that kdiag waits for cannot be traced from the same process)", tid, s.opts.PID)
		}
	}
	return nil
}

// add starts tracking a thread the kernel reports as traced by us.
func (s *ptraceSession) add(tid int) *ptraceThread {
	if t := s.threads[tid]; t != nil {
		return t
	}
	t := &ptraceThread{tid: tid, pid: ptraceTgid(tid, 0, false)}
	s.threads[tid] = t
	s.traced++
	if s.detaching {
		_ = ptraceRequest(unix.PTRACE_INTERRUPT, tid, 0)
	}
	return t
}

// loop handles stops until the sample is stopped or nothing is traced.
func (s *ptraceSession) loop() {
	flags := unix.WALL | unix.WNOTHREAD
	if s.poll {
		flags |= unix.WNOHANG
	}
	for !s.stop.Load() && len(s.threads) > 0 {
		if s.scope != nil && time.Since(s.lastScan) >= scopeRescan {
			s.scan()
		}
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, flags, nil)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return // ECHILD: nothing left to trace
		case tid == 0:
			time.Sleep(time.Millisecond)
		default:
			s.handle(tid, ws)
			if ptraceTestHook != nil {
				ptraceTestHook()
			}
		}
	}
}

// ptraceTestHook, when set by a test, runs after every stop handled by the
// tracing loop (to inject a panic on the tracer thread).
var ptraceTestHook func()

// handle processes one wait status, resuming the thread unless detaching.
func (s *ptraceSession) handle(tid int, ws unix.WaitStatus) {
	t := s.threads[tid]
	if ws.Exited() || ws.Signaled() {
		if t != nil {
			s.gone(t)
		}
		if tid == s.opts.PID {
			s.exited = true
		}
		return
	}
	if !ws.Stopped() {
		return
	}
	if t == nil {
		t = s.add(tid) // a new child reporting before its parent's event
	}
	t.stopped, t.sig = true, 0
	sig := int(ws>>8) & 0xff
	switch event := int(ws >> 16); {
	case sig == int(unix.SIGTRAP)|0x80:
		s.syscallStop(t)
	case event == unix.PTRACE_EVENT_STOP:
		if ptraceIsStopSignal(sig) && !s.detaching {
			// Group-stop: the process stays stopped; be told when it continues.
			if ptraceRequest(unix.PTRACE_LISTEN, tid, 0) == nil {
				t.stopped = false
			}
			return
		}
		if ptraceIsStopSignal(sig) {
			// Detaching from a group-stop: deliver the stop signal again so
			// that a stopped process stays stopped (detaching with 0 was
			// seen to let it run, about 1 in 4 under load).
			t.sig = sig
		}
	case event == unix.PTRACE_EVENT_CLONE || event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK:
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
			child := s.add(int(msg))
			child.pid = ptraceTgid(int(msg), t.pid, event != unix.PTRACE_EVENT_CLONE)
			if child.pid == int(msg) {
				s.noteProcess(child.pid, t.pid, tid)
			}
		}
	case event == unix.PTRACE_EVENT_EXEC:
		if p := s.procs[t.pid]; p != nil {
			p.Comm = ptraceComm(t.pid)
		}
		// A non-leader thread that execs takes the leader's tid.
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil && int(msg) != tid {
			if old := s.threads[int(msg)]; old != nil {
				t.call = old.call
				delete(s.threads, int(msg))
			}
		}
	case event == unix.PTRACE_EVENT_EXIT:
		// Detach now so that the exit is reported to the real parent.
		if tid == s.opts.PID {
			s.exited = true
		}
		s.detach(t)
		return
	case event == 0:
		t.sig = sig // signal-delivery-stop: deliver it on resume
	}
	if s.detaching {
		return
	}
	s.resume(t)
}

// resume continues a stopped thread to its next syscall stop.
func (s *ptraceSession) resume(t *ptraceThread) {
	_ = ptraceRequest(unix.PTRACE_SYSCALL, t.tid, uintptr(t.sig))
	t.stopped, t.sig = false, 0
}

// syscallStop records a syscall entry or exit.
func (s *ptraceSession) syscallStop(t *ptraceThread) {
	var info ptraceSyscallInfo
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GET_SYSCALL_INFO, uintptr(t.tid),
		unsafe.Sizeof(info), uintptr(unsafe.Pointer(&info)), 0, 0)
	if e != 0 {
		if e == unix.EIO || e == unix.EINVAL {
			panic("the kernel lacks PTRACE_GET_SYSCALL_INFO (Linux 5.3 or later is needed)")
		}
		return
	}
	now := time.Now()
	switch info.Op {
	case unix.PTRACE_SYSCALL_INFO_ENTRY:
		if t.call != nil {
			s.rec.finish(t.call, now, 0, false, false)
			t.call = nil
		}
		name := syscallName(info.Arch, info.Data[0])
		if !s.rec.wants(name) {
			return
		}
		args, paths := syscallDecodeArgs(info.Arch, name, [6]uint64(info.Data[1:7]), ptraceMemory(t.tid))
		t.call = &straceCall{pid: t.pid, tid: t.tid, name: name, raw: [6]uint64(info.Data[1:7]), args: args, paths: paths, entry: now}
	case unix.PTRACE_SYSCALL_INFO_EXIT:
		if t.call == nil {
			return // entered before we attached, or filtered out
		}
		if c := t.call; uint8(info.Data[1]) == 0 {
			syscallDecodeExit(ptraceMemory(t.tid), c.name, c.raw, int64(info.Data[0]), c.args)
		}
		s.rec.finish(t.call, now, int64(info.Data[0]), uint8(info.Data[1]) != 0, true)
		t.call = nil
	}
}

// gone forgets a thread that exited.
func (s *ptraceSession) gone(t *ptraceThread) {
	s.finishPending(t)
	delete(s.threads, t.tid)
}

// detach detaches a stopped thread, delivering the signal of its
// signal-delivery-stop if it is in one.
func (s *ptraceSession) detach(t *ptraceThread) {
	s.finishPending(t)
	_ = ptraceRequest(unix.PTRACE_DETACH, t.tid, uintptr(t.sig))
	delete(s.threads, t.tid)
}

// finishPending records the thread's call in progress as unfinished.
func (s *ptraceSession) finishPending(t *ptraceThread) {
	if t.call != nil && s.rec != nil {
		s.rec.finish(t.call, time.Now(), 0, false, false)
	}
	t.call = nil
}

// detachAll interrupts every traced thread, waits for each to stop and
// detaches it. It reports whether all were detached (or exited) in time.
func (s *ptraceSession) detachAll() bool {
	s.detaching = true
	for _, t := range s.threads {
		if !t.stopped {
			_ = ptraceRequest(unix.PTRACE_INTERRUPT, t.tid, 0)
		}
	}
	start := time.Now()
	progress := start
	for {
		for _, t := range s.threads {
			if t.stopped {
				s.detach(t)
			}
		}
		if len(s.threads) == 0 {
			return true
		}
		if time.Since(start) > ptraceDetachTimeout {
			return false
		}
		if time.Since(progress) > 50*time.Millisecond {
			// A thread already in a tracing stop that was not reported to
			// us (another wait took it) can be detached all the same.
			for _, t := range s.threads {
				if ptraceState(t.tid) == 't' {
					t.sig = ptraceStopSignal(t.tid)
					s.detach(t)
				}
			}
			progress = time.Now()
		}
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOTHREAD|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
		case err != nil:
			// Nothing can report any more: the rest are gone.
			for _, t := range s.threads {
				s.gone(t)
			}
		case tid == 0:
			time.Sleep(200 * time.Microsecond)
		default:
			progress = time.Now()
			s.handle(tid, ws)
		}
	}
}

// ptraceStopSignal returns the signal to deliver when detaching a thread
// from a ptrace-stop whose report we did not see: the signal of a
// signal-delivery-stop, SIGSTOP for a group-stop, 0 for syscall and event
// stops.
func ptraceStopSignal(tid int) int {
	var si [128]byte
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&si[0])), 0, 0)
	switch {
	case e == unix.EINVAL:
		// A group-stop: stop it again on detach, so that a process that
		// was stopped stays stopped.
		return int(unix.SIGSTOP)
	case e != 0:
		return 0 // gone
	}
	signo := int(int32(binary.NativeEndian.Uint32(si[0:])))
	code := int(int32(binary.NativeEndian.Uint32(si[8:])))
	if signo == int(unix.SIGTRAP) && (code&0x7f == int(unix.SIGTRAP)) {
		return 0 // syscall-stop (SIGTRAP|0x80) or PTRACE_EVENT stop (SIGTRAP|event<<8)
	}
	return signo
}

// ptraceRequest issues a ptrace request that takes no address. Requests
// never block, so they are made as raw syscalls.
func ptraceRequest(req, tid int, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 0, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ptraceIsStopSignal(sig int) bool {
	switch unix.Signal(sig) {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return true
	}
	return false
}

// ptraceMemory reads a tracee's memory with process_vm_readv.
type ptraceMemory int

func (m ptraceMemory) read(addr uint64, n int) ([]byte, bool) {
	if addr == 0 || n <= 0 {
		return nil, false
	}
	buf := make([]byte, n)
	got, err := unix.ProcessVMReadv(int(m),
		[]unix.Iovec{{Base: &buf[0], Len: uint64(n)}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: n}}, 0)
	if err != nil || got != n {
		return nil, false
	}
	return buf, true
}

func (m ptraceMemory) readString(addr uint64, max int) (string, bool) {
	if addr == 0 {
		return "", false
	}
	var out []byte
	for len(out) < max {
		// Read up to the end of the page, which is readable if addr is.
		chunk := min(4096-int(addr%4096), max-len(out))
		b, ok := m.read(addr, chunk)
		if !ok {
			if out == nil {
				return "", false
			}
			break
		}
		for i, c := range b {
			if c == 0 {
				return string(append(out, b[:i]...)), true
			}
		}
		out = append(out, b...)
		addr += uint64(chunk)
	}
	return string(out) + "...", true
}
