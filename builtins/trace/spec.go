package trace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
)

// Request asks for a syscall sample of a process, a container or a pod.
type Request struct {
	// PID is the process, in the node's PID namespace.
	PID int `json:"pid"`
	// Scope is process (default), container or pod: with container or
	// pod, every process of pid's container or pod is traced, those
	// running at the start and those that appear during the sample.
	Scope string `json:"scope,omitempty"`
	// DurationNS is how long to trace, in nanoseconds (with a Probe, the
	// longest the sample may last).
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
	// UntilPaths, when set, end the sample early: once a call touched a
	// path under one of them (and, with a Probe, after its answer).
	UntilPaths []string `json:"until_paths,omitempty"`
	// Probe, when set, is a request kdiag sends from pid's network
	// namespace once tracing has started. The sample ends GraceMS after
	// the answer, and Result.Request tells what serving it did.
	Probe *Probe `json:"probe,omitempty"`
}

// Probe is the request strace_sample sends while tracing.
type Probe struct {
	// URL is an http or https URL (a GET, as the kubelet sends), or
	// tcp://host:port for a bare connection.
	URL string `json:"url"`
	// Headers are extra HTTP request headers.
	Headers map[string]string `json:"headers,omitempty"`
	// TimeoutMS bounds the request.
	TimeoutMS int64 `json:"timeout_ms"`
	// GraceMS is how long tracing goes on after the answer, for the
	// server's work after its response (closing, logging).
	GraceMS int64 `json:"grace_ms"`
}

// Sample is strace_sample as a node operation: its Spec, Request and
// Result, and Local's Sample as its implementation. A node.Executor serves
// it: node.Local on this machine, the node agent on another node.
var Sample = &node.Row[Request, Result]{
	Builtin: "strace_sample",
	Declare: spec,
	Target:  func(r *Request) int { return r.PID },
	Linux:   Local{}.Sample,
}

// The scopes strace_sample traces.
const (
	// ScopeProcess is the process, its threads and the children it creates.
	ScopeProcess = "process"
	// ScopeContainer is every process of the target's container.
	ScopeContainer = "container"
	// ScopePod is every process of the target's pod.
	ScopePod = "pod"
)

// Local traces on this node. It needs Linux, and root or CAP_SYS_PTRACE.
type Local struct{}

// Sample traces req.PID (or its container or pod) on this node (Linux on
// amd64 or arm64) with the backend req.Backend selects: eBPF when it can
// run, else ptrace; both serve scopes, probes and until_path.
func (Local) Sample(ctx context.Context, req *Request) (*Result, error) {
	opts, err := straceOptionsOf(req)
	if err != nil {
		return nil, err
	}
	return sampleWith(ctx, opts, func(ctx context.Context, opts straceOptions, run sampler) (*Result, error) {
		switch {
		case req.Probe != nil:
			return sampleRequest(ctx, opts, req.Probe, run)
		case len(opts.UntilPaths) > 0:
			return sampleUntil(ctx, opts, run)
		}
		return run(ctx, opts)
	})
}

// Spec returns the strace_sample built-in, traced on this node
// (Local): it traces the syscalls of a process and all its threads for a
// short window with ptrace, natively (no strace binary), and always
// detaches.
func Spec() *engine.Spec { return Sample.Spec(node.Local{}) }

// spec declares strace_sample, its requests sent with send.
func spec(send func(context.Context, *Request) (*Result, error)) *engine.Spec {
	return &engine.Spec{
		Name: "strace_sample",
		Doc: `strace_sample traces the syscalls of process pid (a host PID, e.g. from find_pid) and all its threads for duration, then detaches.

It attaches with PTRACE_SEIZE like strace -f -p, decodes syscall names, paths, flags,
socket addresses, return values and errno names, and summarises like strace -c. The
process is slowed down while traced. It always detaches, also on error, timeout and
cancellation. Needs root or CAP_SYS_PTRACE.

With scope="container" (or "pod") it traces every process of pid's container (or
pod): found by cgroup (or, for a process with no cgroup of its own, by PID
namespace), those running at the start and those that appear during the sample.
Every event names its process (pid), and processes lists them with their PID in the
container (ns_pid), parent and command.

With probe=URL it sends that request itself from pid's network namespace once
tracing has started (an HTTP GET like the kubelet's, or tcp://host:port), ends the
sample grace after the answer (duration is then the longest it may last), and
request says what serving that one request did: the syscalls from the server's
accept of kdiag's connection to its last write on it, in the threads that handled
the connection and in the processes created for it (a forked handler, a CGI
script), apart from everything else the container did meanwhile. That is causal
evidence: a file in request.files was touched by the failing request itself. When
the request moved between threads (Go's runtime reads on one and may answer from
another), a file touched by the server's other threads meanwhile counts only if the
server did not touch it outside the request too.

backend="auto" (the default) traces with eBPF instead when the kernel and privileges
allow it (root or CAP_BPF and CAP_PERFMON, kernel BTF): raw tracepoints on sys_enter and
sys_exit, paths and execve argv captured in the kernel, the summary from exact per-CPU
counters, at a cost near zero to the process. It serves scope, probe and until_path too:
a container or pod is its cgroup v2 id when the host has one for it, else its processes,
the children they create (followed in the kernel) and those that join it (rescanned);
a call already in progress when tracing starts (a server blocked in accept) is recorded
at its exit, with the address accept wrote. The result says which backend ran and why;
backend="ptrace" or "ebpf" forces one.`,
		Params: []engine.Param{
			{Name: "pid", Type: "int", Doc: "host PID of the process to trace", Required: true},
			{Name: "duration", Type: "duration", Doc: "how long to trace", Default: "2s"},
			{Name: "follow_forks", Type: "bool", Doc: "also trace child processes created during the sample", Default: true},
			{Name: "syscalls", Type: "list", Doc: "only record these syscalls, e.g. [\"openat\", \"statx\"]"},
			{Name: "max_events", Type: "int", Doc: "keep at most this many events (the summary counts all)", Default: int64(10000)},
			{Name: "scope", Type: "string", Doc: "process, container (every process of pid's container) or pod", Default: "process"},
			{Name: "probe", Type: "string", Doc: "a URL to request while tracing (http://..., https://... or tcp://host:port); the result's request says what serving it did"},
			{Name: "headers", Type: "dict", Doc: "extra HTTP headers of the probe"},
			{Name: "probe_timeout", Type: "duration", Doc: "how long the probe may take", Default: "5s"},
			{Name: "grace", Type: "duration", Doc: "how long tracing goes on after the probe's answer", Default: "200ms"},
			{Name: "until_path", Type: "list", Doc: "end the sample once a file under one of these paths was touched (and, with probe, the answer is in), e.g. the ConfigMap mounts"},
			{Name: "backend", Type: "string", Doc: "\"auto\" (eBPF when possible, else ptrace), \"ebpf\" or \"ptrace\"", Default: "auto"},
		},
		Result: `pid: the traced process
duration_ms: how long the sample lasted
attached_threads: threads attached at the start
threads: threads and processes traced in all, including ones created during the sample
events: syscalls [{pid, tid, name, args, ret, errno, start_ms, dur_us}] in entry order; ret is None for a call that had not returned
truncated: more events happened than max_events
total_events: number of syscalls seen
summary: [{syscall, calls, errors, total_us}] like strace -c, most time first
files: distinct paths passed to syscalls [{path, calls, syscalls, results}]; results are errno names, "0" or "ok"
files_truncated: more than 2000 distinct paths were seen
exited: the process exited during the sample
detached: every traced thread was detached (or had exited) before returning
scope, scope_by: what was traced, and how its processes were found
processes: [{pid, ns_pid, ppid, comm, forked_by, start_ms}] every process traced; forked_by is the thread that created it during the sample (0: it was running at the start)
request: with probe, {url, http, tcp, client, found, server: {pid, tid, fd}, start_ms, end_ms, threads, processes, events, events_truncated, files, note}: what serving kdiag's own request did; found is False (note says why) when the server's accept of kdiag's connection was not seen; None without probe
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
			return send(ctx, req)
		},
	}
}

// straceOptions are the validated arguments of strace_sample.
type straceOptions struct {
	PID         int
	Scope       string
	Duration    time.Duration
	FollowForks bool
	Filter      map[string]bool
	MaxEvents   int
	Backend     string

	// UntilPaths end the sample (grace after the probe's answer, if
	// any) once a call touched a path under one of them.
	UntilPaths []string
	// until is closed by the recorder when UntilPaths were touched.
	until chan struct{}

	// keepAll keeps every call for the analysis of a request.
	keepAll bool
	// started, if set, is called once tracing has started.
	started func()
	// stop, if set, ends the sample when it is closed.
	stop <-chan struct{}
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
	if a.Has("until_path") {
		req.UntilPaths = append([]string{}, a.Strings("until_path")...)
	}
	if sc := a.String("scope"); sc != "" && sc != ScopeProcess {
		req.Scope = sc
	}
	if u := a.String("probe"); u != "" {
		req.Probe = &Probe{URL: u, TimeoutMS: 5000, GraceMS: 200}
		if a.Has("probe_timeout") {
			req.Probe.TimeoutMS = a.Duration("probe_timeout").Milliseconds()
		}
		if a.Has("grace") {
			req.Probe.GraceMS = a.Duration("grace").Milliseconds()
		}
		for k, v := range a.Map("headers") {
			if req.Probe.Headers == nil {
				req.Probe.Headers = map[string]string{}
			}
			req.Probe.Headers[k] = fmt.Sprint(v)
		}
	}
	return req
}

// straceOptionsOf validates a request.
func straceOptionsOf(req *Request) (straceOptions, error) {
	opts := straceOptions{
		UntilPaths:  req.UntilPaths,
		PID:         req.PID,
		Scope:       req.Scope,
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
	case req.Scope != "" && req.Scope != ScopeProcess && req.Scope != ScopeContainer && req.Scope != ScopePod:
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: scope %q: want process, container or pod", req.Scope)
	case opts.Backend != "" && opts.Backend != "auto" && opts.Backend != "ebpf" && opts.Backend != "ptrace":
		return opts, engine.Errorf(engine.KindInvalid, "strace_sample: backend must be \"auto\", \"ebpf\" or \"ptrace\", got %q", opts.Backend)
	}
	if req.Probe != nil {
		if err := checkProbe(req.Probe); err != nil {
			return opts, err
		}
		opts.keepAll = true
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
