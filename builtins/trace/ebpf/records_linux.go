//go:build linux && (amd64 || arm64)

package ebpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Record kinds and item kinds, as in kdiag.c.
const (
	recCall    = 1
	recStrings = 2
	recFork    = 3
	recExec    = 4
	recExit    = 5
	// recNoReturn is a call record of exit or exit_group, sent at entry.
	recNoReturn = 6
)

// Sizes of the fixed records of kdiag.c.
const (
	callRecSize    = 104
	stringsRecHead = 24
	forkRecSize    = 32
	execRecSize    = 296
	exitRecSize    = 24
)

var le = binary.LittleEndian

// pendingStrings are the captures of a call that has not exited yet.
type pendingStrings struct {
	ts       uint64
	captured []Captured
}

// collector turns ring buffer records into a Result.
type collector struct {
	opts    Options
	objs    *kdiagObjects
	res     *Result
	pending map[int]pendingStrings // by thread
	off     bool                   // call records were turned off
	live    map[int]bool           // target processes not known to have exited
	seen    map[int]bool           // target processes given or found by Rescan
	bad     int                    // malformed records
}

// record decodes one ring buffer record.
func (c *collector) record(b []byte) {
	if len(b) < 4 {
		c.bad++
		return
	}
	switch le.Uint32(b) {
	case recCall, recNoReturn:
		if len(b) < callRecSize {
			c.bad++
			return
		}
		c.call(b)
	case recStrings:
		if len(b) < stringsRecHead {
			c.bad++
			return
		}
		tid := int(le.Uint32(b[4:]))
		size := int(le.Uint32(b[20:]))
		if stringsRecHead+size > len(b) {
			c.bad++
			return
		}
		if _, ok := c.pending[tid]; !ok && len(c.pending) >= maxPending {
			return
		}
		ts, items := le.Uint64(b[8:]), parseItems(b[stringsRecHead:stringsRecHead+size])
		if p, ok := c.pending[tid]; ok && p.ts == ts {
			// What the call wrote, sent at its exit, joins what it
			// read at its entry.
			items = append(p.captured, items...)
		}
		c.pending[tid] = pendingStrings{ts: ts, captured: items}
	case recFork:
		if len(b) < forkRecSize {
			c.bad++
			return
		}
		f := Fork{ParentTGID: int(le.Uint32(b[4:])), ParentTID: int(le.Uint32(b[8:])),
			ChildTGID: int(le.Uint32(b[12:])), ChildTID: int(le.Uint32(b[16:])), TimeNS: le.Uint64(b[24:])}
		f.Thread = f.ChildTGID == f.ParentTGID
		if !f.Thread && c.opts.FollowForks && len(c.live) < maxProcRecords {
			c.live[f.ChildTGID] = true
		}
		c.res.Forks = c.keep(c.res.Forks, f)
	case recExec:
		if len(b) < execRecSize {
			c.bad++
			return
		}
		c.res.Execs = c.keepExec(Exec{TGID: int(le.Uint32(b[4:])), TID: int(le.Uint32(b[8:])),
			OldTID: int(le.Uint32(b[12:])), TimeNS: le.Uint64(b[16:]), Comm: cstring(b[24:40]), Filename: cstring(b[40:296])})
	case recExit:
		if len(b) < exitRecSize {
			c.bad++
			return
		}
		e := Exit{TGID: int(le.Uint32(b[4:])), TID: int(le.Uint32(b[8:])), Code: int(int32(le.Uint32(b[12:]))), TimeNS: le.Uint64(b[16:])}
		if e.TID == e.TGID {
			delete(c.live, e.TGID)
		}
		if len(c.res.Exits) < maxProcRecords {
			c.res.Exits = append(c.res.Exits, e)
		} else {
			c.res.ProcTruncated = true
		}
	default:
		c.bad++
	}
}

// keep appends a fork record unless maxProcRecords are kept.
func (c *collector) keep(forks []Fork, f Fork) []Fork {
	if len(forks) >= maxProcRecords {
		c.res.ProcTruncated = true
		return forks
	}
	return append(forks, f)
}

// keepExec appends an exec record unless maxProcRecords are kept.
func (c *collector) keepExec(e Exec) []Exec {
	if len(c.res.Execs) >= maxProcRecords {
		c.res.ProcTruncated = true
		return c.res.Execs
	}
	return append(c.res.Execs, e)
}

// gone reports whether every target process exited (never for a cgroup
// or a rescanned set, which new processes can join).
func (c *collector) gone() bool {
	return c.opts.CgroupID == 0 && c.opts.Rescan == nil && len(c.live) == 0
}

// call decodes a call record and joins the strings captured at its entry.
func (c *collector) call(b []byte) {
	if len(c.res.Calls) >= c.opts.MaxEvents {
		c.res.Truncated = true
		if !c.off && setCallsOff(c.objs) == nil {
			c.off = true
		}
		return
	}
	call := Call{TGID: int(le.Uint32(b[4:])), TID: int(le.Uint32(b[8:])), Nr: le.Uint32(b[12:]),
		Ret: int64(le.Uint64(b[64:])), EntryNS: le.Uint64(b[72:]), DurNS: le.Uint64(b[80:]),
		Comm: cstring(b[88:104]), Finished: le.Uint32(b) == recCall}
	if !call.Finished {
		call.Ret = 0
	}
	for i := range call.Args {
		call.Args[i] = le.Uint64(b[16+8*i:])
	}
	if p, ok := c.pending[call.TID]; ok {
		if p.ts == call.EntryNS {
			call.Captured = p.captured
		}
		delete(c.pending, call.TID)
	}
	c.res.Calls = append(c.res.Calls, call)
	if c.opts.OnCall != nil && call.Finished {
		c.opts.OnCall(&c.res.Calls[len(c.res.Calls)-1])
	}
}

// add traces more processes from now on (Options.Rescan).
func (c *collector) add(tgids []int) {
	one := uint8(1)
	for _, t := range tgids {
		if c.seen[t] || len(c.seen) >= maxProcRecords {
			continue
		}
		c.seen[t] = true
		if c.objs.Targets.Put(uint32(t), one) == nil && alive(t) {
			c.live[t] = true
		}
	}
}

// parseItems decodes the items of a strings record.
func parseItems(b []byte) []Captured {
	var out []Captured
	words := map[int]int{}
	for len(b) >= 4 {
		kind, arg, n := CaptureKind(b[0]), int(b[1]), int(le.Uint16(b[2:]))
		b = b[4:]
		if n > len(b) {
			break
		}
		it := Captured{Arg: arg, Kind: kind, Value: string(b[:n])}
		switch kind {
		case CaptureArgv:
			it.Word = words[arg]
			words[arg]++
		case CaptureArgvEnd:
			it.Word = words[arg]
		}
		out = append(out, it)
		b = b[n:]
	}
	return out
}

// cstring is the NUL-terminated string at the start of b.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// finish reads the per-CPU counters, the dropped count and the calls
// still in progress.
func (c *collector) finish() error {
	var counts []kdiagCount
	for nr := uint32(0); nr < maxNR; nr++ {
		if err := c.objs.Counts.Lookup(nr, &counts); err != nil {
			return fmt.Errorf("ebpf: reading the counters: %v", err)
		}
		var sum Count
		for _, n := range counts {
			sum.Calls += n.Calls
			sum.Errors += n.Errors
			sum.TotalNS += n.Ns
		}
		if sum.Calls > 0 {
			c.res.Counts[nr] = sum
		}
	}
	var dropped []uint64
	if err := c.objs.Dropped.Lookup(uint32(0), &dropped); err != nil {
		return fmt.Errorf("ebpf: reading the dropped counter: %v", err)
	}
	for _, d := range dropped {
		c.res.Dropped += d
	}
	var kept uint64
	for _, n := range c.res.Counts {
		kept += n.Calls
	}
	if len(c.res.Calls) >= c.opts.MaxEvents && kept > uint64(len(c.res.Calls)) {
		c.res.Truncated = true
	}
	c.inProgress()
	if c.bad > 0 {
		return fmt.Errorf("ebpf: %d malformed ring buffer records", c.bad)
	}
	return nil
}

// threadComm is the name of a thread, or "" once it is gone.
func threadComm(tgid, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", tgid, tid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// pidfdThread is PIDFD_THREAD (O_EXCL): a pidfd for a thread, not only a
// thread group leader (Linux 6.9).
const pidfdThread = unix.O_EXCL

// inProgress adds the calls the targets' threads were still in at the end,
// read from their task-local storage through a pidfd of each thread: the
// threads of every target process, and every thread seen in a record.
func (c *collector) inProgress() {
	tids := map[int]int{} // thread -> process
	for tgid := range c.seen {
		ents, _ := os.ReadDir("/proc/" + strconv.Itoa(tgid) + "/task")
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				tids[tid] = tgid
			}
		}
	}
	for _, f := range c.res.Forks {
		tids[f.ChildTID] = f.ChildTGID
	}
	for i := range c.res.Calls {
		tids[c.res.Calls[i].TID] = c.res.Calls[i].TGID
	}
	for tid, tgid := range tids {
		if len(c.res.Calls) >= c.opts.MaxEvents {
			c.res.Truncated = true
			return
		}
		flags := pidfdThread
		if tid == tgid {
			flags = 0
		}
		fd, err := unix.PidfdOpen(tid, flags)
		if err != nil {
			continue // gone, or a kernel without PIDFD_THREAD
		}
		var in kdiagInflight
		err = c.objs.Inflight.Lookup(uint32(fd), &in)
		unix.Close(fd)
		if err != nil || in.Live == 0 {
			continue
		}
		call := Call{TGID: int(in.Tgid), TID: tid, Nr: in.Nr, Args: in.Args, EntryNS: in.Ts, Comm: threadComm(int(in.Tgid), tid)}
		if p, ok := c.pending[tid]; ok && p.ts == in.Ts {
			call.Captured = p.captured
		}
		c.res.Calls = append(c.res.Calls, call)
	}
}
