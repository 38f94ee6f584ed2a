//go:build linux && (amd64 || arm64)

package trace

import (
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scopeRescan is how often a container or pod sample looks for processes
// that joined it without being created by a traced one.
const scopeRescan = 100 * time.Millisecond

// ptraceTgid returns the thread group of a new task: the task itself for
// a fork, else what /proc says, else fallback.
func ptraceTgid(tid, fallback int, isProcess bool) int {
	if isProcess {
		return tid
	}
	if st, err := ptraceStatus(tid); err == nil {
		if n, err := strconv.Atoi(st["Tgid"]); err == nil && n > 0 {
			return n
		}
	}
	if fallback > 0 {
		return fallback
	}
	return tid
}

// ptraceComm returns a process's command name.
func ptraceComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// noteProcess adds pid to the process table: ppid and forkedBy are known
// for a process created during the sample, and read from /proc otherwise.
func (s *ptraceSession) noteProcess(pid, ppid, forkedBy int) {
	if p := s.procs[pid]; p != nil {
		// A scan of the scope can see a new child before its parent's
		// fork event does: the event says who created it.
		if p.ForkedBy == 0 && forkedBy != 0 {
			p.PPID, p.ForkedBy = ppid, forkedBy
			p.StartMS = math.Round(float64(time.Since(s.rec.start).Nanoseconds())/1e3) / 1e3
		}
		return
	}
	p := &Process{PID: pid, PPID: ppid, ForkedBy: forkedBy}
	if st, err := ptraceStatus(pid); err == nil {
		if ppid == 0 {
			p.PPID, _ = strconv.Atoi(st["PPid"])
		}
		if f := strings.Fields(st["NSpid"]); len(f) > 0 {
			p.NSPID, _ = strconv.Atoi(f[len(f)-1])
		}
		p.Comm = st["Name"]
	}
	if forkedBy != 0 && s.rec != nil {
		p.StartMS = math.Round(float64(time.Since(s.rec.start).Nanoseconds())/1e3) / 1e3
	}
	s.procs[pid] = p
}

// processes returns the process table, by host PID.
func (s *ptraceSession) processes() []Process {
	out := make([]Process, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// noneTraced reports whether no thread of any traced process is still
// traced by this process.
func (s *ptraceSession) noneTraced() bool {
	for pid := range s.procs {
		if !ptraceNoneTracedBy(pid, s.self) {
			return false
		}
	}
	return ptraceNoneTracedBy(s.opts.PID, s.self)
}
