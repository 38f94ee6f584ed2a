//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"

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
