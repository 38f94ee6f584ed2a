//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/trace/ebpf"
	"github.com/kdiag/kdiag/engine"
)

// straceCounter follows the counts (and CPU times) a "getppid" target
// prints every 50ms.
type straceCounter struct {
	mu    sync.Mutex
	count int64
	cpu   int64 // ns
	at    time.Time
	// cpuRates are the calls per CPU-second of the target, one per rate.
	cpuRates []float64
}

func (c *straceCounter) get() (int64, int64, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count, c.cpu, c.at
}

// rate measures the target's getppid calls per second over window; it
// also appends the calls per second of the target's own CPU time to
// cpuRates (on a busy machine the target gets a fraction of a CPU, and
// the wall-clock rate measures that share more than the tracer's cost).
func (c *straceCounter) rate(window time.Duration) float64 {
	n0, cpu0, t0 := c.get()
	time.Sleep(window)
	n1, cpu1, t1 := c.get()
	if !t1.After(t0) || cpu1 <= cpu0 {
		c.cpuRates = append(c.cpuRates, 0)
		return 0
	}
	c.cpuRates = append(c.cpuRates, float64(n1-n0)/(float64(cpu1-cpu0)/1e9))
	return float64(n1-n0) / t1.Sub(t0).Seconds()
}

// cpuRate is the calls per CPU-second of the last rate.
func (c *straceCounter) cpuRate() float64 { return c.cpuRates[len(c.cpuRates)-1] }

func straceMedian(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// BenchmarkStraceOverhead measures the throughput of a syscall-heavy
// target (getppid in a loop) untraced, under strace_sample (ptrace, eBPF
// with the default max_events, eBPF recording every call) and under
// strace -f, in the same run, alternating. It reports the median ops/s of each and
// kdiag/strace, the ratio of the slowdowns (below 1 means strace_sample
// slows the target down less than strace).
func BenchmarkStraceOverhead(b *testing.B) {
	strace := straceBinary(b)
	cmd, sc := straceStart(b, straceTargetPath(b), "getppid")
	pid := cmd.Process.Pid
	counter := &straceCounter{}
	go func() {
		for sc.Scan() {
			var n, cpu int64
			if _, err := fmt.Sscan(sc.Text(), &n, &cpu); err == nil {
				counter.mu.Lock()
				counter.count, counter.cpu, counter.at = n, cpu, time.Now()
				counter.mu.Unlock()
			}
		}
	}()
	const window = time.Second
	time.Sleep(200 * time.Millisecond)
	var untracedRates, kdiagRates, ebpfRates, ebpfAllRates, straceRates []float64
	var untracedCPU, ebpfCPU, ebpfAllCPU []float64
	for i := 0; i < b.N; i++ {
		untracedRates = append(untracedRates, counter.rate(window))
		untracedCPU = append(untracedCPU, counter.cpuRate())

		// strace_sample on ptrace, on eBPF (max_events 10000, the default:
		// past it the kernel only counts), and on eBPF sending every call
		// through the ring buffer.
		for _, run := range []struct {
			backend   string
			maxEvents int64
			rates     *[]float64
			cpu       *[]float64
		}{{"ptrace", 10000, &kdiagRates, nil}, {"ebpf", 10000, &ebpfRates, &ebpfCPU}, {"ebpf", 1 << 40, &ebpfAllRates, &ebpfAllCPU}} {
			done := make(chan error, 1)
			go func() {
				_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(pid), "backend": run.backend,
					"max_events": run.maxEvents, "duration": (window + 400*time.Millisecond).String()})
				done <- err
			}()
			// Loading the eBPF programs takes ~0.3s (more on a busy machine).
			time.Sleep(200 * time.Millisecond)
			if run.backend == "ebpf" {
				time.Sleep(300 * time.Millisecond)
			}
			*run.rates = append(*run.rates, counter.rate(window))
			if run.cpu != nil {
				*run.cpu = append(*run.cpu, counter.cpuRate())
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}

		tracer := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "-p", strconv.Itoa(pid))
		if err := tracer.Start(); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 200 && ptraceTracerOf(pid) == 0; j++ {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		straceRates = append(straceRates, counter.rate(window))
		tracer.Process.Signal(os.Interrupt)
		tracer.Wait()
		time.Sleep(100 * time.Millisecond)
	}
	untraced, kdiag, straced := straceMedian(untracedRates), straceMedian(kdiagRates), straceMedian(straceRates)
	ebpfOps, ebpfAll := straceMedian(ebpfRates), straceMedian(ebpfAllRates)
	b.ReportMetric(untraced, "untraced-ops/s")
	b.ReportMetric(kdiag, "kdiag-ops/s")
	b.ReportMetric(ebpfOps, "ebpf-ops/s")
	b.ReportMetric(ebpfAll, "ebpf-all-ops/s")
	b.ReportMetric(ebpfOps/untraced, "ebpf/untraced")
	b.ReportMetric(ebpfAll/untraced, "ebpf-all/untraced")
	// Per CPU-second of the target: the in-kernel cost eBPF adds to each
	// call, whatever share of a CPU the target gets (kdiag's reader runs
	// on another thread and is not counted).
	uCPU := straceMedian(untracedCPU)
	b.ReportMetric(uCPU, "untraced-ops/cpu-s")
	b.ReportMetric(straceMedian(ebpfCPU)/uCPU, "ebpf/untraced-cpu")
	b.ReportMetric(straceMedian(ebpfAllCPU)/uCPU, "ebpf-all/untraced-cpu")
	b.ReportMetric(straced, "strace-ops/s")
	b.ReportMetric(untraced/kdiag, "kdiag-slowdown")
	b.ReportMetric(untraced/straced, "strace-slowdown")
	b.ReportMetric(straced/kdiag, "kdiag/strace")
}

// BenchmarkEBPFEventRate measures how many call records per second the
// eBPF backend's ring buffer (4 MiB, read by one goroutine) delivers from
// a getppid loop, and how many it drops, over 1s samples.
func BenchmarkEBPFEventRate(b *testing.B) {
	cmd, _ := straceStart(b, straceTargetPath(b), "getppid")
	var kept, dropped, counted, secs float64
	for i := 0; i < b.N; i++ {
		s, err := ebpf.Sample(context.Background(), ebpf.Options{TGIDs: []int{cmd.Process.Pid}, Duration: time.Second, MaxEvents: 1 << 26})
		if err != nil {
			b.Fatal(err)
		}
		kept += float64(len(s.Calls))
		dropped += float64(s.Dropped)
		for _, n := range s.Counts {
			counted += float64(n.Calls)
		}
		secs += float64(s.EndNS-s.StartNS) / 1e9
	}
	b.ReportMetric(kept/secs, "records/s")
	b.ReportMetric(dropped/secs, "dropped/s")
	b.ReportMetric(counted/secs, "calls/s")
}
