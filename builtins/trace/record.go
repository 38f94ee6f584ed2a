package trace

import (
	"math"
	"sort"
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
}

// Event is one syscall.
type Event struct {
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

// wants reports whether syscall name passes the filter.
func (r *straceRecorder) wants(name string) bool {
	return r.filter == nil || r.filter[name]
}

// straceCall is a syscall seen at entry, completed at exit.
type straceCall struct {
	tid   int
	name  string
	args  []string
	paths []string
	entry time.Time
}

// finish records a call; finished is false when the call had not returned.
func (r *straceRecorder) finish(c *straceCall, exit time.Time, rval int64, isError, finished bool) {
	r.res.TotalEvents++
	dur := int64(0)
	if finished {
		dur = exit.Sub(c.entry).Microseconds()
	}
	errno := ""
	if finished && isError {
		errno = syscallErrnoName(-rval)
	}
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
		switch {
		case !finished:
			f.Results = straceAddDistinct(f.Results, "?")
		case errno != "":
			f.Results = straceAddDistinct(f.Results, errno)
		case rval == 0:
			f.Results = straceAddDistinct(f.Results, "0")
		default:
			f.Results = straceAddDistinct(f.Results, "ok")
		}
	}
	if len(r.res.Events) >= r.maxEvents {
		r.res.Truncated = true
		return
	}
	ev := Event{
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
