//go:build linux && (amd64 || arm64)

package ebpf

import (
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// getppidPerCPUSecond calls getppid b.N times on a locked thread and
// reports the calls per second of that thread's CPU time, which a busy
// machine does not skew as it does the wall clock.
func getppidPerCPUSecond(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		syscall.Getppid()
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru1)
	cpu := float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 1e9
	b.ReportMetric(float64(b.N)/cpu, "calls/cpu-s")
}

// BenchmarkGetppidFloor is the floor of any sys_enter/sys_exit tracer:
// getppid untraced, with empty programs on both raw tracepoints (the
// kernel's syscall-tracepoint slow path alone, for every process), and
// with kdiag's programs tracing this process (counting only, as past
// max_events).
func BenchmarkGetppidFloor(b *testing.B) {
	b.Run("untraced", getppidPerCPUSecond)
	b.Run("empty-programs", func(b *testing.B) {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		for _, tp := range []string{"sys_enter", "sys_exit"} {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
		}
		getppidPerCPUSecond(b)
	})
	b.Run("kdiag-programs-counting", func(b *testing.B) {
		objs, err := load(Options{TGIDs: []int{os.Getpid()}, MaxEvents: 0})
		if err != nil {
			b.Fatal(err)
		}
		defer objs.Close()
		for _, a := range []struct {
			tp   string
			prog *ebpf.Program
		}{{"sys_enter", objs.SysEnter}, {"sys_exit", objs.SysExit}} {
			l, err := attach(a.tp, a.prog)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
		}
		getppidPerCPUSecond(b)
	})
}
