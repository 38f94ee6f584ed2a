//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/kdiag/kdiag/builtins/trace/ebpf"
	"github.com/kdiag/kdiag/engine"
)

// The strace_sample backends.
const (
	backendAuto   = "auto"
	backendEBPF   = "ebpf"
	backendPtrace = "ptrace"
)

// ebpfCheck is ebpf.Check, run once: privileges and kernel do not change
// while kdiag runs, and loading the programs to check costs milliseconds.
var ebpfCheck = sync.OnceValue(ebpf.Check)

// chooseBackend picks the backend for a request: "ebpf" when asked for or
// (auto) when ebpf.Check passes, else "ptrace"; reason says why.
func chooseBackend(asked string) (backend, reason string, err error) {
	switch asked {
	case backendPtrace:
		return backendPtrace, "requested", nil
	case backendEBPF:
		if err := ebpfCheck(); err != nil {
			return "", "", engine.Errorf(engine.KindForbidden, "strace_sample: backend \"ebpf\" cannot run here: %v; use backend=\"ptrace\" or \"auto\"", err)
		}
		return backendEBPF, "requested", nil
	}
	if err := ebpfCheck(); err != nil {
		return backendPtrace, "auto: eBPF unavailable (" + err.Error() + ")", nil
	}
	return backendEBPF, "auto: eBPF available (BTF, privileges, the program loads)", nil
}

// sampleWith runs a request on the chosen backend and says which ran.
func sampleWith(ctx context.Context, opts straceOptions) (*Result, error) {
	backend, reason, err := chooseBackend(opts.Backend)
	if err != nil {
		return nil, err
	}
	var res *Result
	if backend == backendEBPF {
		res, err = ebpfSample(ctx, opts)
	} else {
		res, err = straceSample(ctx, opts)
		if err != nil && opts.Backend != backendPtrace && engine.KindOf(err) == engine.KindForbidden {
			err = engine.Errorf(engine.KindForbidden, "%v; and %s", err, reason)
		}
	}
	if res != nil {
		res.Backend, res.BackendReason = backend, reason
	}
	return res, err
}

// ebpfArch is the audit architecture of this machine, whose syscall
// numbers the eBPF backend sees.
var ebpfArch = map[string]uint32{"amd64": syscallArchX8664, "arm64": syscallArchAArch64}[runtime.GOARCH]

// ebpfSample traces with the eBPF backend and decodes like ptrace.
func ebpfSample(ctx context.Context, opts straceOptions) (*Result, error) {
	if err := ptraceCheckTarget(opts.PID); err != nil {
		return nil, err
	}
	tgid := opts.PID
	if st, err := ptraceStatus(opts.PID); err == nil {
		if n, err := strconv.Atoi(st["Tgid"]); err == nil && n > 0 {
			tgid = n
		}
	}
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(tgid) + "/task")
	eo := ebpf.Options{TGIDs: []int{tgid}, FollowForks: opts.FollowForks, Duration: opts.Duration, MaxEvents: opts.MaxEvents}
	if opts.Filter != nil {
		eo.Syscalls = map[uint32]bool{}
		for nr := uint32(0); nr < 512; nr++ {
			if opts.Filter[syscallName(ebpfArch, uint64(nr))] {
				eo.Syscalls[nr] = true
			}
		}
	}
	s, err := ebpf.Sample(ctx, eo)
	if s == nil {
		if errors.Is(err, ebpf.ErrUnsupported) {
			return nil, engine.Errorf(engine.KindForbidden, "strace_sample: %v", err)
		}
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: %v", err)
	}
	res := ebpfResult(s, opts, len(tasks))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, engine.Errorf(engine.KindTimeout, "strace_sample: timed out after %dms (eBPF programs detached: true)", res.DurationMS)
	case err != nil:
		return nil, engine.Errorf(engine.KindCancelled, "strace_sample: cancelled after %dms (eBPF programs detached: true)", res.DurationMS)
	}
	return res, nil
}

// ebpfResult decodes an eBPF sample with the ptrace backend's tables and
// recorder; the summary comes from the kernel's exact per-CPU counters.
func ebpfResult(s *ebpf.Result, opts straceOptions, attached int) *Result {
	at := func(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
	rec := newStraceRecorder(at(s.StartNS), opts.MaxEvents, opts.Filter)
	unfinished := map[string]int{}
	for i := range s.Calls {
		c := &s.Calls[i]
		name := syscallName(ebpfArch, uint64(c.Nr))
		args, paths := syscallDecodeArgs(ebpfArch, name, c.Args, newCapturedMemory(c))
		call := &straceCall{pid: c.TGID, tid: c.TID, name: name, raw: c.Args, args: args, paths: paths, entry: at(c.EntryNS)}
		rec.finish(call, at(c.EntryNS+c.DurNS), c.Ret, c.Ret < 0 && c.Ret >= -4095, c.Finished)
		if !c.Finished {
			unfinished[name]++
		}
	}
	// The kernel counted every call, also those dropped or past max_events.
	rec.summary = map[string]*SummaryRow{}
	total := 0
	for nr, n := range s.Counts {
		name := syscallName(ebpfArch, uint64(nr))
		rec.summary[name] = &SummaryRow{Syscall: name, Calls: int(n.Calls), Errors: int(n.Errors), TotalUS: int64(n.TotalNS / 1000)}
		total += int(n.Calls)
	}
	for name, n := range unfinished {
		row := rec.summary[name]
		if row == nil {
			row = &SummaryRow{Syscall: name}
			rec.summary[name] = row
		}
		row.Calls += n
		total += n
	}
	rec.res.TotalEvents = total
	res := rec.result()
	res.Truncated = res.Truncated || s.Truncated || len(res.Events) < total
	res.PID = opts.PID
	res.DurationMS = int64(s.EndNS-s.StartNS) / 1e6
	res.AttachedThreads = attached
	res.Threads = attached
	for _, f := range s.Forks {
		if f.Thread || opts.FollowForks {
			res.Threads++
		}
	}
	for _, e := range s.Exits {
		if e.TID == opts.PID {
			res.Exited = true
		}
	}
	if st := ptraceState(opts.PID); st == 0 || st == 'Z' || st == 'X' {
		res.Exited = true
	}
	res.Detached = true
	res.Dropped = int64(s.Dropped)
	return res
}

// capturedMemory serves syscallDecodeArgs from the memory the kernel
// captured at the entry of a call: strings and structs at the addresses
// of the arguments, and argv arrays whose words get addresses of their own
// (in the kernel half of the address space, which no argument points to).
type capturedMemory struct {
	strs map[uint64]string
	mem  map[uint64][]byte
}

// capturedArgvBase is where the synthetic addresses of argv words start.
const capturedArgvBase = 0xffff_f000_0000_0000

func newCapturedMemory(c *ebpf.Call) capturedMemory {
	m := capturedMemory{strs: map[uint64]string{}, mem: map[uint64][]byte{}}
	for _, it := range c.Captured {
		if it.Arg < 0 || it.Arg >= len(c.Args) {
			continue
		}
		addr := c.Args[it.Arg]
		switch it.Kind {
		case ebpf.CapturePath:
			m.strs[addr] = it.Value
		case ebpf.CaptureBytes:
			m.mem[addr] = []byte(it.Value)
		case ebpf.CaptureArgv:
			p := capturedArgvBase + uint64(it.Arg)<<16 + uint64(it.Word)
			m.mem[addr+8*uint64(it.Word)] = binary.LittleEndian.AppendUint64(nil, p)
			m.strs[p] = it.Value
		case ebpf.CaptureArgvEnd:
			m.mem[addr+8*uint64(it.Word)] = make([]byte, 8)
		}
	}
	return m
}

func (m capturedMemory) readString(addr uint64, max int) (string, bool) {
	s, ok := m.strs[addr]
	if ok && len(s) > max {
		s = s[:max]
	}
	return s, ok
}

func (m capturedMemory) read(addr uint64, n int) ([]byte, bool) {
	b, ok := m.mem[addr]
	if ok && len(b) > n {
		b = b[:n]
	}
	return b, ok
}
