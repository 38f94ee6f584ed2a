package node

import (
	"context"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// StraceSpec returns the strace_sample built-in: it traces the syscalls of
// a process and all its threads for a short window with ptrace, natively
// (no strace binary), and always detaches.
func StraceSpec() *engine.Spec {
	return &engine.Spec{
		Name: "strace_sample",
		Doc: `strace_sample traces the syscalls of process pid (a host PID, e.g. from find_pid) and all its threads for duration, then detaches.

It attaches with PTRACE_SEIZE like strace -f -p, decodes syscall names, paths, flags,
socket addresses, return values and errno names, and summarises like strace -c. The
process is slowed down while traced. It always detaches, also on error, timeout and
cancellation. Needs root or CAP_SYS_PTRACE.`,
		Params: []engine.Param{
			{Name: "pid", Type: "int", Doc: "host PID of the process to trace", Required: true},
			{Name: "duration", Type: "duration", Doc: "how long to trace", Default: "2s"},
			{Name: "follow_forks", Type: "bool", Doc: "also trace child processes created during the sample", Default: true},
			{Name: "syscalls", Type: "list", Doc: "only record these syscalls, e.g. [\"openat\", \"statx\"]"},
			{Name: "max_events", Type: "int", Doc: "keep at most this many events (the summary counts all)", Default: int64(10000)},
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
detached: every traced thread was detached (or had exited) before returning`,
		Effect:  engine.Read,
		Timeout: 0,
		Run:     runStraceSample,
	}
}

// straceOptions are the validated arguments of strace_sample.
type straceOptions struct {
	PID         int
	Duration    time.Duration
	FollowForks bool
	Filter      map[string]bool
	MaxEvents   int
}

func runStraceSample(ctx context.Context, c *engine.Call) (any, error) {
	opts := straceOptions{
		PID:         int(c.Args.Int("pid")),
		Duration:    c.Args.Duration("duration"),
		FollowForks: c.Args.Bool("follow_forks"),
		MaxEvents:   int(c.Args.Int("max_events")),
	}
	if !c.Args.Has("follow_forks") {
		opts.FollowForks = true
	}
	if !c.Args.Has("max_events") {
		opts.MaxEvents = 10000
	}
	if !c.Args.Has("duration") {
		opts.Duration = 2 * time.Second
	}
	switch {
	case opts.PID <= 0:
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: pid must be positive, got %d", opts.PID)
	case opts.Duration <= 0:
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: duration must be positive, got %s", opts.Duration)
	case opts.MaxEvents < 0:
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: max_events must not be negative, got %d", opts.MaxEvents)
	}
	if c.Args.Has("syscalls") {
		known := syscallKnownNames()
		opts.Filter = map[string]bool{}
		var unknown []string
		for _, name := range c.Args.Strings("syscalls") {
			if !known[name] {
				unknown = append(unknown, name)
			}
			opts.Filter[name] = true
		}
		if len(unknown) > 0 {
			return nil, engine.Errorf(engine.KindInvalid, "strace_sample: unknown syscall name(s): %s", strings.Join(unknown, ", "))
		}
	}
	return straceSample(ctx, opts)
}
