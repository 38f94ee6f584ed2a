//go:build linux && (amd64 || arm64)

package trace

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins/trace/ebpf"
)

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
		if c.Finished {
			syscallDecodeExit(mem, name, c.Args, c.Ret, args)
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
