package trace

import (
	"context"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// Request asks for a syscall sample of a process.
type Request struct {
	// PID is the process, in the node's PID namespace.
	PID int `json:"pid"`
	// DurationNS is how long to trace, in nanoseconds.
	DurationNS int64 `json:"duration_ns"`
	// FollowForks also traces children created during the sample.
	FollowForks bool `json:"follow_forks"`
	// Syscalls, if not null, are the only syscalls recorded (an empty
	// list records none).
	Syscalls []string `json:"syscalls"`
	// MaxEvents caps the events kept (the summary counts all).
	MaxEvents int `json:"max_events"`
	// Backend is "auto" (or ""), "ebpf" or "ptrace".
	Backend string `json:"backend"`
}

// Tracer serves strace_sample's requests. Local traces on this node; a
// node agent can serve the same requests remotely.
type Tracer interface {
	// Sample traces processes for a while, then detaches.
	Sample(ctx context.Context, req *Request) (*Result, error)
}

// Local is the Tracer of this node. It needs Linux, and root or
// CAP_SYS_PTRACE.
type Local struct{}

var _ Tracer = Local{}

// Sample traces req.PID on this node (Linux on amd64 or arm64) with the
// backend req.Backend selects: eBPF when it can run, else ptrace.
func (Local) Sample(ctx context.Context, req *Request) (*Result, error) {
	opts, err := straceOptionsOf(req)
	if err != nil {
		return nil, err
	}
	return sampleWith(ctx, opts)
}

// Spec returns the strace_sample built-in, traced on this node
// (Local): it traces the syscalls of a process and all its threads for a
// short window with ptrace, natively (no strace binary), and always
// detaches.
func Spec() *engine.Spec { return SpecFor(Local{}) }

// SpecFor returns the strace_sample built-in, served by t.
func SpecFor(t Tracer) *engine.Spec {
	return &engine.Spec{
		Name: "strace_sample",
		Doc: `strace_sample traces the syscalls of process pid (a host PID, e.g. from find_pid) and all its threads for duration, then detaches.

It attaches with PTRACE_SEIZE like strace -f -p, decodes syscall names, paths, flags,
socket addresses, return values and errno names, and summarises like strace -c. The
process is slowed down while traced. It always detaches, also on error, timeout and
cancellation. Needs root or CAP_SYS_PTRACE.

backend="auto" (the default) traces with eBPF instead when the kernel and privileges
allow it (root or CAP_BPF and CAP_PERFMON, kernel BTF): raw tracepoints on sys_enter and
sys_exit, paths and execve argv captured in the kernel, the summary from exact per-CPU
counters, at a cost near zero to the process. The result says which backend ran and why;
backend="ptrace" or "ebpf" forces one.`,
		Params: []engine.Param{
			{Name: "pid", Type: "int", Doc: "host PID of the process to trace", Required: true},
			{Name: "duration", Type: "duration", Doc: "how long to trace", Default: "2s"},
			{Name: "follow_forks", Type: "bool", Doc: "also trace child processes created during the sample", Default: true},
			{Name: "syscalls", Type: "list", Doc: "only record these syscalls, e.g. [\"openat\", \"statx\"]"},
			{Name: "max_events", Type: "int", Doc: "keep at most this many events (the summary counts all)", Default: int64(10000)},
			{Name: "backend", Type: "string", Doc: "\"auto\" (eBPF when possible, else ptrace), \"ebpf\" or \"ptrace\"", Default: "auto"},
		},
		Result: `pid: the traced process
duration_ms: how long the sample lasted
attached_threads: threads attached at the start
threads: threads and processes traced in all, including ones created during the sample
events: syscalls [{tid, name, args, ret, errno, start_ms, dur_us}] in entry order; ret is None for a call that had not returned
truncated: more events happened than max_events
total_events: number of syscalls seen
summary: [{syscall, calls, errors, total_us}] like strace -c, most time first
files: distinct paths passed to syscalls [{path, calls, syscalls, results}]; results are errno names, "0" or "ok"
files_truncated: more than 2000 distinct paths were seen
exited: the process exited during the sample
detached: every traced thread was detached (or had exited) before returning
backend: "ebpf" or "ptrace", the backend that ran
backend_reason: why that backend ran
dropped: eBPF records the ring buffer had no room for (the summary still counts their calls)`,
		Effect:  engine.Read,
		Timeout: 0,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			req := straceRequestOf(c.Args)
			if _, err := straceOptionsOf(req); err != nil {
				return nil, err
			}
			return t.Sample(ctx, req)
		},
	}
}

// straceOptions are the validated arguments of strace_sample.
type straceOptions struct {
	PID         int
	Duration    time.Duration
	FollowForks bool
	Filter      map[string]bool
	MaxEvents   int
	Backend     string
}

// straceRequestOf reads strace_sample's arguments, defaults filled in.
func straceRequestOf(a engine.Args) *Request {
	req := &Request{
		PID:         int(a.Int("pid")),
		DurationNS:  int64(a.Duration("duration")),
		FollowForks: a.Bool("follow_forks"),
		MaxEvents:   int(a.Int("max_events")),
		Backend:     a.String("backend"),
	}
	if !a.Has("follow_forks") {
		req.FollowForks = true
	}
	if !a.Has("max_events") {
		req.MaxEvents = 10000
	}
	if !a.Has("duration") {
		req.DurationNS = int64(2 * time.Second)
	}
	if a.Has("syscalls") {
		req.Syscalls = append([]string{}, a.Strings("syscalls")...)
	}
	return req
}

// straceOptionsOf validates a request.
func straceOptionsOf(req *Request) (straceOptions, error) {
	opts := straceOptions{
		PID:         req.PID,
		Duration:    time.Duration(req.DurationNS),
		FollowForks: req.FollowForks,
		MaxEvents:   req.MaxEvents,
		Backend:     req.Backend,
	}
	switch {
	case opts.PID <= 0:
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: pid must be positive, got %d", opts.PID)
	case opts.Duration <= 0:
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: duration must be positive, got %s", opts.Duration)
	case opts.MaxEvents < 0:
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: max_events must not be negative, got %d", opts.MaxEvents)
	case opts.Backend != "" && opts.Backend != "auto" && opts.Backend != "ebpf" && opts.Backend != "ptrace":
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: backend must be \"auto\", \"ebpf\" or \"ptrace\", got %q", opts.Backend)
	}
	if req.Syscalls != nil {
		known := syscallKnownNames()
		opts.Filter = map[string]bool{}
		var unknown []string
		for _, name := range req.Syscalls {
			if !known[name] {
				unknown = append(unknown, name)
			}
			opts.Filter[name] = true
		}
		if len(unknown) > 0 {
			return opts, engine.Errorf(engine.KindInvalid, "strace_sample: unknown syscall name(s): %s", strings.Join(unknown, ", "))
		}
	}
	return opts, nil
}
