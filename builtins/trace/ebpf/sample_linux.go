//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// maxNR mirrors MAX_NR in kdiag.c: syscall numbers counted.
const maxNR = 512

// maxProcRecords bounds the fork, exec and exit records kept each (a fork
// bomb makes millions); Result.ProcTruncated says when more came.
const maxProcRecords = 1 << 16

// maxPending bounds the captured strings waiting for their call's exit
// (one per thread).
const maxPending = 1 << 16

// Check says whether eBPF tracing can run here, and if not exactly what is
// missing: CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), the kernel's BTF,
// or the program loading (the verifier's complaint).
func Check() error {
	if err := checkCaps(); err != nil {
		return err
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("%w: the kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): %v", ErrUnsupported, err)
	}
	objs, err := load(Options{TGIDs: []int{os.Getpid()}, RingBytes: os.Getpagesize()})
	if err != nil {
		return err
	}
	return objs.Close()
}

// checkCaps reads the effective capabilities of this process.
func checkCaps() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("%w: reading capabilities: %v", ErrUnsupported, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return fmt.Errorf("%w: reading capabilities: %v", ErrUnsupported, err)
		}
		has := func(c uint) bool { return caps&(1<<c) != 0 }
		if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
			return nil
		}
		var missing []string
		if !has(unix.CAP_BPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(unix.CAP_PERFMON) {
			missing = append(missing, "CAP_PERFMON")
		}
		return fmt.Errorf("%w: needs root, or CAP_BPF and CAP_PERFMON; missing %s", ErrUnsupported, strings.Join(missing, " and "))
	}
	return fmt.Errorf("%w: no CapEff in /proc/self/status", ErrUnsupported)
}

// load loads the programs and maps configured for opts, not attached.
func load(opts Options) (*kdiagObjects, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: raising RLIMIT_MEMLOCK: %v", ErrUnsupported, err)
	}
	spec, err := loadKdiag()
	if err != nil {
		return nil, fmt.Errorf("ebpf: reading the embedded program: %v", err)
	}
	ring := opts.RingBytes
	if ring == 0 {
		ring = 4 << 20
	}
	page := os.Getpagesize()
	if ring < page || ring&(ring-1) != 0 {
		return nil, fmt.Errorf("ebpf: ring buffer size %d is not a power of two of at least a page (%d)", ring, page)
	}
	spec.Maps["events"].MaxEntries = uint32(ring)
	for name, v := range map[string]any{
		"target_cgroup": opts.CgroupID,
		"use_targets":   b2u(len(opts.TGIDs) > 0),
		"follow":        b2u(opts.FollowForks),
		"use_filter":    b2u(opts.Syscalls != nil),
		"nr_exit":       uint32(unix.SYS_EXIT),
		"nr_exit_group": uint32(unix.SYS_EXIT_GROUP),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("ebpf: setting %s: %v", name, err)
		}
	}
	objs := &kdiagObjects{}
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: the kernel refused the program: %v (verifier: %s)", ErrUnsupported, err, verifierTail(ve))
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: loading the program was refused (%v): needs root, or CAP_BPF and CAP_PERFMON", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("%w: loading the program: %v", ErrUnsupported, err)
	}
	if err := fill(objs, opts); err != nil {
		objs.Close()
		return nil, err
	}
	return objs, nil
}

// verifierTail is the end of a verifier log, where the reason is.
func verifierTail(ve *ebpf.VerifierError) string {
	log := ve.Log
	if len(log) > 5 {
		log = log[len(log)-5:]
	}
	return strings.Join(log, "; ")
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// fill writes the targets, the syscall filter and the captures.
func fill(objs *kdiagObjects, opts Options) error {
	one := uint8(1)
	for _, tgid := range opts.TGIDs {
		if err := objs.Targets.Put(uint32(tgid), one); err != nil {
			return fmt.Errorf("ebpf: adding target %d: %v", tgid, err)
		}
	}
	for nr := range opts.Syscalls {
		if nr >= maxNR {
			return fmt.Errorf("ebpf: syscall number %d out of range (< %d)", nr, maxNR)
		}
		if err := objs.Sysfilter.Put(nr, one); err != nil {
			return fmt.Errorf("ebpf: filtering syscall %d: %v", nr, err)
		}
	}
	for nr, c := range captureTable() {
		if err := objs.Captures.Put(nr, c.kernel()); err != nil {
			return fmt.Errorf("ebpf: capture of syscall %d: %v", nr, err)
		}
	}
	if opts.MaxEvents <= 0 {
		return setCallsOff(objs)
	}
	return nil
}

func setCallsOff(objs *kdiagObjects) error {
	if err := objs.Control.Put(uint32(0), uint32(1)); err != nil {
		return fmt.Errorf("ebpf: stopping call records: %v", err)
	}
	return nil
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// attach attaches a program to the raw tracepoint name: through BTF
// (tp_btf) for the programs of that type, sys_enter and sys_exit.
func attach(name string, prog *ebpf.Program) (link.Link, error) {
	if prog.Type() == ebpf.Tracing {
		return link.AttachTracing(link.TracingOptions{Program: prog})
	}
	return link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: prog})
}

// closed reports whether ch is closed (never for a nil ch).
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds, bpf_ktime_get_ns's clock.
func monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Sample traces the processes opts selects for opts.Duration, until ctx
// is done, or until every target process has exited, then detaches and unloads everything, on every path. A
// cancelled or expired ctx returns what was seen with ctx's error.
func Sample(ctx context.Context, opts Options) (res *Result, err error) {
	if len(opts.TGIDs) == 0 && opts.CgroupID == 0 {
		return nil, errors.New("ebpf: no target: give TGIDs or a cgroup id")
	}
	if opts.Duration <= 0 {
		return nil, fmt.Errorf("ebpf: duration must be positive, got %s", opts.Duration)
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	if opts.CgroupID != 0 {
		// Without a unified hierarchy every process would match the
		// root's id: refuse rather than trace the whole machine.
		if _, err := Cgroup2Mount(); err != nil {
			return nil, err
		}
	}
	objs, err := load(opts)
	if err != nil {
		return nil, err
	}
	defer objs.Close()
	rd, err := ringbuf.NewReader(objs.Events)
	if err != nil {
		return nil, fmt.Errorf("ebpf: reading the ring buffer: %v", err)
	}
	defer rd.Close()

	var links []link.Link
	detach := func() {
		for i := len(links) - 1; i >= 0; i-- {
			links[i].Close()
		}
		links = nil
	}
	defer detach()
	// The entry side first: sys_exit records a call it saw no entry of as
	// one in progress at attach (a server blocked in accept), and with the
	// exit side first every call made between the two attachments would
	// be one (a busy loop makes thousands, and they filled max_events).
	for _, a := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_fork", objs.ProcessFork},
		{"sched_process_exec", objs.ProcessExec},
		{"sched_process_exit", objs.ProcessExit},
		{"sys_enter", objs.SysEnter},
		{"sys_exit", objs.SysExit},
	} {
		l, err := attach(a.name, a.prog)
		if err != nil {
			return nil, fmt.Errorf("%w: attaching to raw tracepoint %s: %v", ErrUnsupported, a.name, err)
		}
		links = append(links, l)
	}
	c := &collector{opts: opts, objs: objs, res: &Result{StartNS: monotonic(), Counts: map[uint32]Count{}},
		pending: map[int]pendingStrings{}, live: map[int]bool{}, seen: map[int]bool{}}
	for _, tgid := range opts.TGIDs {
		c.seen[tgid] = true
		if alive(tgid) {
			c.live[tgid] = true
		}
	}
	if opts.Started != nil {
		opts.Started()
	}
	every := opts.RescanEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	nextScan := time.Now().Add(every)

	end := time.Now().Add(opts.Duration)
	if opts.ReadDelay > 0 {
		select {
		case <-time.After(opts.ReadDelay):
		case <-ctx.Done():
		}
	}
	var rec ringbuf.Record
	for ctx.Err() == nil && time.Now().Before(end) && !c.gone() && !closed(opts.Stop) {
		if opts.Rescan != nil && !time.Now().Before(nextScan) {
			c.add(opts.Rescan())
			nextScan = time.Now().Add(every)
		}
		next := time.Now().Add(20 * time.Millisecond)
		if next.After(end) {
			next = end
		}
		rd.SetDeadline(next)
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return nil, fmt.Errorf("ebpf: reading the ring buffer: %v", err)
		}
		c.record(rec.RawSample)
	}
	detach()
	c.res.EndNS = monotonic()
	// Drain what the programs sent before they were detached.
	rd.SetDeadline(time.Now().Add(-time.Second))
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			return nil, fmt.Errorf("ebpf: reading the ring buffer: %v", err)
		}
		c.record(rec.RawSample)
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c.res, ctx.Err()
}
