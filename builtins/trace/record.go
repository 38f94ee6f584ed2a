package trace

import (
	"math"
	"sort"
	"strings"
	"time"
)

// Result is the result of strace_sample.
type Result struct {
	// PID is the traced process.
	PID int `json:"pid"`
	// DurationMS is how long the sample actually lasted.
	DurationMS int64 `json:"duration_ms"`
	// AttachedThreads is the number of threads attached at the start.
	AttachedThreads int `json:"attached_threads"`
	// Threads is the number of threads and processes traced in all,
	// counting those created during the sample.
	Threads int `json:"threads"`
	// Events are the syscalls in order of entry, at most max_events.
	Events []Event `json:"events"`
	// Truncated is true when more events happened than max_events.
	Truncated bool `json:"truncated"`
	// TotalEvents counts all syscalls seen, kept or not.
	TotalEvents int `json:"total_events"`
	// Summary counts calls, errors and time per syscall, most time first.
	Summary []SummaryRow `json:"summary"`
	// Files lists the distinct paths passed to syscalls, at most 2000.
	Files []File `json:"files"`
	// FilesTruncated is true when more distinct paths were seen.
	FilesTruncated bool `json:"files_truncated"`
	// Exited is true when the process exited during the sample.
	Exited bool `json:"exited"`
	// Detached is true when every traced thread was detached (or had
	// exited) before strace_sample returned.
	Detached bool `json:"detached"`
	// Backend is the backend that ran: "ebpf" or "ptrace".
	Backend string `json:"backend"`
	// BackendReason says why that backend ran.
	BackendReason string `json:"backend_reason"`
	// Dropped counts eBPF records the ring buffer had no room for; the
	// summary and total_events still count their calls.
	Dropped int64 `json:"dropped"`
	// Scope is what was traced: "process" (the process and the children
	// it creates), "container" or "pod" (every process in its cgroup, or
	// in its PID namespace when it has no cgroup of its own).
	Scope string `json:"scope"`
	// ScopeBy says how the scope's processes were found, e.g.
	// "cgroup pids:/kubepods/.../<id>" or "pid namespace pid:[4026532]".
	ScopeBy string `json:"scope_by"`
	// Processes are the processes traced, in order of their host PID.
	Processes []Process `json:"processes"`
	// Request is what one request sent by kdiag during the sample did
	// (strace_sample with probe=); nil otherwise.
	Request *RequestTrace `json:"request"`

	// calls are every call seen, kept for the analysis of a request.
	calls          []*straceCall
	callsTruncated bool
	start          time.Time
}

// Process is one process traced during a sample.
type Process struct {
	// PID is the host PID (the thread group id).
	PID int `json:"pid"`
	// NSPID is the PID inside the process's own PID namespace (the
	// container's view), 0 when unknown.
	NSPID int `json:"ns_pid"`
	// PPID is the host PID of the parent.
	PPID int `json:"ppid"`
	// Comm is the command name (after an exec during the sample, the new one).
	Comm string `json:"comm"`
	// ForkedBy is the thread that created the process during the sample,
	// 0 for a process already running when the sample started.
	ForkedBy int `json:"forked_by"`
	// StartMS is when the process was created, relative to the start of
	// the sample; 0 for one already running.
	StartMS float64 `json:"start_ms"`
}

// Event is one syscall.
type Event struct {
	// PID is the calling process (host thread group id).
	PID int `json:"pid"`
	// TID is the calling thread.
	TID int `json:"tid"`
	// Name is the syscall name, e.g. "openat".
	Name string `json:"name"`
	// Args are the decoded arguments, e.g. ["AT_FDCWD", "\"/etc/hosts\"", "O_RDONLY|O_CLOEXEC"].
	Args []string `json:"args"`
	// Ret is the return value, or nil when the call had not returned by the end.
	Ret *int64 `json:"ret"`
	// Errno names the error ("ENOENT"), or is "" on success.
	Errno string `json:"errno"`
	// StartMS is the entry time relative to the start of the sample.
	StartMS float64 `json:"start_ms"`
	// DurUS is the time spent in the call, in microseconds.
	DurUS int64 `json:"dur_us"`
}

// SummaryRow is one row of the strace -c style summary.
type SummaryRow struct {
	Syscall string `json:"syscall"`
	Calls   int    `json:"calls"`
	Errors  int    `json:"errors"`
	TotalUS int64  `json:"total_us"`
}

// File is one path passed to syscalls.
type File struct {
	Path     string   `json:"path"`
	Calls    int      `json:"calls"`
	Syscalls []string `json:"syscalls"`
	// Results are the distinct outcomes: an errno name, "0", or "ok" for
	// another successful return (a file descriptor, a length).
	Results []string `json:"results"`
}

// straceMaxFiles bounds the distinct paths kept (a find(1) walking a tree
// touches millions).
const straceMaxFiles = 2000

// straceRecorder accumulates events, summary and files during a sample.
type straceRecorder struct {
	start     time.Time
	maxEvents int
	filter    map[string]bool // nil: everything
	res       Result
	summary   map[string]*SummaryRow
	files     map[string]*File
	// keepAll keeps every finished call in all, for the analysis of a
	// request (bounded by requestMaxCalls), whatever the filter.
	keepAll bool
	all     []*straceCall
	allFull bool
	// until, when set, is closed once a call touched a path under one of
	// untilPaths.
	until      chan struct{}
	untilPaths []string
}

// touched closes r.until when c touched a path under r.untilPaths.
func (r *straceRecorder) touched(c *straceCall) {
	if r.until == nil || len(r.untilPaths) == 0 {
		return
	}
	for _, p := range c.paths {
		for _, u := range r.untilPaths {
			if p == u || strings.HasPrefix(p, strings.TrimSuffix(u, "/")+"/") {
				close(r.until)
				r.until = nil
				return
			}
		}
	}
}

func newStraceRecorder(start time.Time, maxEvents int, filter map[string]bool) *straceRecorder {
	return &straceRecorder{
		start:     start,
		maxEvents: maxEvents,
		filter:    filter,
		summary:   map[string]*SummaryRow{},
		files:     map[string]*File{},
	}
}

// wants reports whether syscall name is to be decoded: it passes the
// filter, or a request is analysed.
func (r *straceRecorder) wants(name string) bool {
	return r.filter == nil || r.filter[name] || r.keepAll
}

// straceCall is a syscall seen at entry, completed at exit.
type straceCall struct {
	pid   int
	tid   int
	name  string
	raw   [6]uint64
	args  []string
	paths []string
	entry time.Time
	// exit, ret and finished are set by finish.
	exit     time.Time
	ret      int64
	errno    string
	finished bool
}

// finish records a call; finished is false when the call had not returned.
func (r *straceRecorder) finish(c *straceCall, exit time.Time, rval int64, isError, finished bool) {
	dur := int64(0)
	if finished {
		dur = exit.Sub(c.entry).Microseconds()
	}
	errno := ""
	if finished && isError {
		errno = syscallErrnoName(-rval)
	}
	c.exit, c.ret, c.errno, c.finished = exit, rval, errno, finished
	r.touched(c)
	if r.keepAll {
		if len(r.all) < requestMaxCalls {
			r.all = append(r.all, c)
		} else {
			r.allFull = true
		}
	}
	if r.filter != nil && !r.filter[c.name] {
		return
	}
	r.res.TotalEvents++
	s := r.summary[c.name]
	if s == nil {
		s = &SummaryRow{Syscall: c.name}
		r.summary[c.name] = s
	}
	s.Calls++
	s.TotalUS += dur
	if errno != "" {
		s.Errors++
	}
	for _, p := range c.paths {
		f := r.files[p]
		if f == nil && len(r.files) >= straceMaxFiles {
			r.res.FilesTruncated = true
			continue
		}
		if f == nil {
			f = &File{Path: p}
			r.files[p] = f
		}
		f.Calls++
		f.Syscalls = straceAddDistinct(f.Syscalls, c.name)
		f.Results = straceAddDistinct(f.Results, resultWord(c))
	}
	if len(r.res.Events) >= r.maxEvents {
		r.res.Truncated = true
		return
	}
	ev := Event{
		PID:     c.pid,
		TID:     c.tid,
		Name:    c.name,
		Args:    c.args,
		Errno:   errno,
		StartMS: math.Round(float64(c.entry.Sub(r.start).Nanoseconds())/1e3) / 1e3,
		DurUS:   dur,
	}
	if ev.Args == nil {
		ev.Args = []string{}
	}
	if finished {
		v := rval
		ev.Ret = &v
	}
	r.res.Events = append(r.res.Events, ev)
}

// result returns the accumulated result, events sorted by entry time.
func (r *straceRecorder) result() *Result {
	res := r.res
	res.calls, res.callsTruncated, res.start = r.all, r.allFull, r.start
	sort.SliceStable(res.Events, func(i, j int) bool { return res.Events[i].StartMS < res.Events[j].StartMS })
	if res.Events == nil {
		res.Events = []Event{}
	}
	res.Summary = make([]SummaryRow, 0, len(r.summary))
	for _, s := range r.summary {
		res.Summary = append(res.Summary, *s)
	}
	sort.Slice(res.Summary, func(i, j int) bool {
		a, b := res.Summary[i], res.Summary[j]
		if a.TotalUS != b.TotalUS {
			return a.TotalUS > b.TotalUS
		}
		if a.Calls != b.Calls {
			return a.Calls > b.Calls
		}
		return a.Syscall < b.Syscall
	})
	res.Files = make([]File, 0, len(r.files))
	for _, f := range r.files {
		res.Files = append(res.Files, *f)
	}
	sort.Slice(res.Files, func(i, j int) bool { return res.Files[i].Path < res.Files[j].Path })
	return &res
}

func straceAddDistinct(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
