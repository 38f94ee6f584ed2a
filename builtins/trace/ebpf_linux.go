//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
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

// sampler traces with one backend.
type sampler func(context.Context, straceOptions) (*Result, error)

// sampleWith runs a request (mode: a plain sample, a probe's request or
// until a path is touched) on the chosen backend and says which ran.
func sampleWith(ctx context.Context, opts straceOptions, mode func(context.Context, straceOptions, sampler) (*Result, error)) (*Result, error) {
	backend, reason, err := chooseBackend(opts.Backend)
	if err != nil {
		return nil, err
	}
	run := straceSample
	if backend == backendEBPF {
		run = ebpfSample
	}
	res, err := mode(ctx, opts, run)
	if err != nil && backend == backendPtrace && opts.Backend != backendPtrace && engine.KindOf(err) == engine.KindForbidden {
		err = engine.Errorf(engine.KindForbidden, "%v; and %s", err, reason)
	}
	if res != nil {
		res.Backend, res.BackendReason = backend, reason
	}
	return res, err
}

// ebpfArch is the audit architecture of this machine, whose syscall
// numbers the eBPF backend sees.
var ebpfArch = map[string]uint32{"amd64": syscallArchX8664, "arm64": syscallArchAArch64}[runtime.GOARCH]

// ebpfSample traces with the eBPF backend and decodes like ptrace. A
// container or pod scope is its cgroup v2 id where the host has one for
// it, else its processes now, the children they create (followed in the
// kernel) and those that join it later (found every scopeRescan).
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
	sc, err := newScope(opts.Scope, opts.PID)
	if err != nil {
		return nil, err
	}
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(tgid) + "/task")
	eo := ebpf.Options{TGIDs: []int{tgid}, FollowForks: opts.FollowForks, Duration: opts.Duration, MaxEvents: opts.MaxEvents,
		Started: opts.started, Stop: opts.stop}
	scopeBy := "pid"
	if sc != nil {
		eo.FollowForks = true
		scopeBy = sc.by
		if id, ok := sc.cgroup2ID(); ok {
			eo.CgroupID = id
			scopeBy += " (eBPF: cgroup v2 id)"
		} else {
			eo.TGIDs = appendMissing(eo.TGIDs, sc.members())
			eo.Rescan, eo.RescanEvery = sc.members, scopeRescan
			scopeBy += " (eBPF: its processes and their children, rescanned every " + scopeRescan.String() + ")"
		}
	}
	if opts.keepAll && eo.MaxEvents < requestMaxCalls {
		eo.MaxEvents = requestMaxCalls
	}
	if opts.until != nil {
		live := &straceRecorder{until: opts.until, untilPaths: opts.UntilPaths}
		eo.OnCall = func(c *ebpf.Call) {
			if live.until == nil {
				return
			}
			name := syscallName(ebpfArch, uint64(c.Nr))
			_, paths := syscallDecodeArgs(ebpfArch, name, c.Args, newCapturedMemory(c))
			live.touched(&straceCall{name: name, paths: paths, finished: true})
		}
	}
	if opts.Filter != nil && !opts.keepAll {
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
	res.Scope, res.ScopeBy = ScopeProcess, scopeBy
	if sc != nil {
		res.Scope = sc.name
	}
	return res, nil
}

// appendMissing appends the elements of more not in list.
func appendMissing(list, more []int) []int {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// ebpfResult decodes an eBPF sample with the ptrace backend's tables and
// recorder; the summary comes from the kernel's exact per-CPU counters.
func ebpfResult(s *ebpf.Result, opts straceOptions, attached int) *Result {
	at := func(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
	rec := newStraceRecorder(at(s.StartNS), opts.MaxEvents, opts.Filter)
	rec.keepAll = opts.keepAll
	unfinished := map[string]int{}
	for i := range s.Calls {
		c := &s.Calls[i]
		name := syscallName(ebpfArch, uint64(c.Nr))
		mem := newCapturedMemory(c)
		args, paths := syscallDecodeArgs(ebpfArch, name, c.Args, mem)
		if (name == "accept" || name == "accept4") && c.Finished && c.Ret >= 0 && len(args) > 1 {
			args[1] = syscallAcceptedPeer(mem, c.Args[1], c.Args[2])
		}
		call := &straceCall{pid: c.TGID, tid: c.TID, name: name, raw: c.Args, args: args, paths: paths, entry: at(c.EntryNS)}
		rec.finish(call, at(c.EntryNS+c.DurNS), c.Ret, c.Ret < 0 && c.Ret >= -4095, c.Finished)
		if !c.Finished && rec.wants(name) {
			unfinished[name]++
		}
	}
	// The kernel counted every call, also those dropped or past max_events
	// (and, for a request's analysis, those the filter leaves out).
	rec.summary = map[string]*SummaryRow{}
	total := 0
	for nr, n := range s.Counts {
		name := syscallName(ebpfArch, uint64(nr))
		if opts.Filter != nil && !opts.Filter[name] {
			continue
		}
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
	res.Processes = ebpfProcesses(s, opts.PID)
	return res
}

// ebpfProcesses is the process table of a sample: the processes that made
// calls or were there at the start, and those created during it, with the
// thread that created each and the PID its creator saw (the return value
// of its clone, fork or vfork).
func ebpfProcesses(s *ebpf.Result, pid int) []Process {
	procs := map[int]*Process{}
	note := func(tgid int) *Process {
		if p := procs[tgid]; p != nil {
			return p
		}
		p := &Process{PID: tgid}
		if st, err := ptraceStatus(tgid); err == nil {
			p.PPID, _ = strconv.Atoi(st["PPid"])
			if f := strings.Fields(st["NSpid"]); len(f) > 0 {
				p.NSPID, _ = strconv.Atoi(f[len(f)-1])
			}
			p.Comm = st["Name"]
		}
		procs[tgid] = p
		return p
	}
	if st, err := ptraceStatus(pid); err == nil {
		if n, err := strconv.Atoi(st["Tgid"]); err == nil {
			note(n)
		}
	}
	clones := map[int][]*ebpf.Call{} // by thread
	for i := range s.Calls {
		c := &s.Calls[i]
		switch syscallName(ebpfArch, uint64(c.Nr)) {
		case "clone", "clone3", "fork", "vfork":
			if c.Finished && c.Ret > 0 {
				clones[c.TID] = append(clones[c.TID], c)
			}
		}
	}
	for _, cs := range clones {
		sort.Slice(cs, func(i, j int) bool { return cs[i].EntryNS < cs[j].EntryNS })
	}
	for _, f := range s.Forks {
		if f.Thread {
			continue
		}
		p := note(f.ChildTGID)
		p.PPID, p.ForkedBy = f.ParentTGID, f.ParentTID
		p.StartMS = math.Round(float64(int64(f.TimeNS-s.StartNS))/1e3) / 1e3
		// A thread's calls do not overlap: the one that created the
		// child is the last to enter before the fork.
		cs := clones[f.ParentTID]
		if i := sort.Search(len(cs), func(i int) bool { return cs[i].EntryNS > f.TimeNS }); i > 0 {
			if c := cs[i-1]; f.TimeNS <= c.EntryNS+c.DurNS {
				p.NSPID = int(c.Ret)
			}
		}
	}
	for i := range s.Calls {
		if p := note(s.Calls[i].TGID); p.Comm == "" {
			p.Comm = s.Calls[i].Comm
		}
	}
	for _, e := range s.Execs {
		if p := procs[e.TGID]; p != nil && e.Comm != "" {
			p.Comm = e.Comm
		}
	}
	out := make([]Process, 0, len(procs))
	for _, p := range procs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
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
