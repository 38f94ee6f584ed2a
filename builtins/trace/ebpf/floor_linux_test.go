//go:build linux && (amd64 || arm64)

package ebpf

import (
	"os"
	"runtime"
	"sort"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// getppidRate calls getppid n times on a locked thread and returns the
// calls per second of that thread's CPU time, which a busy machine does
// not skew as it does the wall clock.
func getppidRate(n int) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru0)
	for i := 0; i < n; i++ {
		syscall.Getppid()
	}
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru1)
	cpu := float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 1e9
	return float64(n) / cpu
}

// floorVariant attaches what one column of BenchmarkGetppidFloor traces
// getppid with, and returns the function that detaches it.
type floorVariant struct {
	name   string
	attach func(b *testing.B) func()
}

var floorVariants = []floorVariant{
	{"untraced", func(*testing.B) func() { return func() {} }},
	{"empty-programs", attachEmpty},
	{"kdiag-counting", func(b *testing.B) func() { return attachKdiag(b, 0) }},
	{"kdiag-recording", func(b *testing.B) func() { return attachKdiag(b, 1<<30) }},
}

// attachEmpty attaches empty programs to sys_enter and sys_exit: only the
// kernel's syscall-tracepoint slow path, which then runs for every process.
func attachEmpty(b *testing.B) func() {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	var links []link.Link
	for _, tp := range []string{"sys_enter", "sys_exit"} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
		if err != nil {
			b.Fatal(err)
		}
		links = append(links, l)
	}
	return func() {
		for _, l := range links {
			l.Close()
		}
		prog.Close()
	}
}

// attachKdiag attaches kdiag's programs tracing this process: counting
// only (maxEvents 0, as past max_events) or sending a record of every call
// (nobody reads them: the ring buffer fills, and the records are dropped
// and counted, the kernel's work without the reader's).
func attachKdiag(b *testing.B, maxEvents int) func() {
	objs, err := load(Options{TGIDs: []int{os.Getpid()}, MaxEvents: maxEvents})
	if err != nil {
		b.Fatal(err)
	}
	var links []link.Link
	for _, a := range []struct {
		tp   string
		prog *ebpf.Program
	}{{"sys_enter", objs.SysEnter}, {"sys_exit", objs.SysExit}} {
		l, err := attach(a.tp, a.prog)
		if err != nil {
			b.Fatal(err)
		}
		links = append(links, l)
	}
	return func() {
		for _, l := range links {
			l.Close()
		}
		objs.Close()
	}
}

// BenchmarkGetppidFloor is what a syscall tracer on sys_enter/sys_exit
// costs a getppid loop, per CPU-second of the calling thread: untraced,
// with empty programs, and with kdiag's programs counting only or
// recording every call. The variants alternate in rounds of 200k calls
// (b.N rounds), so that the machine's load drifts alike for all, and each
// ratio is the median over the rounds of variant/untraced in the round.
func BenchmarkGetppidFloor(b *testing.B) {
	const calls = 200000
	ratios := map[string][]float64{}
	for r := 0; r < b.N; r++ {
		var base float64
		for _, v := range floorVariants {
			detach := v.attach(b)
			rate := getppidRate(calls)
			detach()
			if v.name == "untraced" {
				base = rate
				continue
			}
			ratios[v.name] = append(ratios[v.name], rate/base)
		}
	}
	for _, v := range floorVariants[1:] {
		rs := ratios[v.name]
		sort.Float64s(rs)
		b.ReportMetric(rs[len(rs)/2], v.name+"/untraced")
	}
	b.ReportMetric(0, "ns/op")
}
