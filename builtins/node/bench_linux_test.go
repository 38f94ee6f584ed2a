//go:build linux

package node_test

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

// BenchmarkHTTPProbe times http_probe into a target's network namespace
// against nsenter -t PID -n curl doing the same request, in the same run,
// and logs the ratio.
func BenchmarkHTTPProbe(b *testing.B) {
	tg, h := start(b, nodetest.Options{})
	pid := strconv.Itoa(tg.PID)
	compare(b, "nsenter_curl",
		func(b *testing.B) {
			r := must[*node.HTTPProbeResult](b, "http_probe", engine.Args{"url": readyz, "ns": h})
			if r.Status != 500 {
				b.Fatalf("status %d", r.Status)
			}
		},
		"nsenter", "-t", pid, "-n", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", readyz)
}

// BenchmarkRun times run(["true"]) in all five namespaces against
// nsenter -t PID -n -p -u -i -m true.
func BenchmarkRun(b *testing.B) {
	tg, h := start(b, nodetest.Options{})
	compare(b, "nsenter",
		func(b *testing.B) {
			r := must[*node.RunResult](b, "run", engine.Args{"cmd": []any{"true"}, "ns": h})
			if r.ExitCode != 0 {
				b.Fatalf("exit %d: %s", r.ExitCode, r.Error)
			}
		},
		"nsenter", "-t", strconv.Itoa(tg.PID), "-n", "-p", "-u", "-i", "-m", "true")
}

// compare runs kdiag's operation and the standard tool as sub-benchmarks
// and logs how many times faster kdiag is.
func compare(b *testing.B, toolName string, op func(*testing.B), tool ...string) {
	var kdiag, std time.Duration
	b.Run("kdiag", func(b *testing.B) {
		for b.Loop() {
			op(b)
		}
		kdiag = b.Elapsed() / time.Duration(b.N)
	})
	b.Run(toolName, func(b *testing.B) {
		if _, err := exec.LookPath(tool[0]); err != nil {
			b.Skipf("%s is not installed", tool[0])
		}
		if _, err := exec.LookPath("curl"); err != nil && toolName == "nsenter_curl" {
			b.Skip("curl is not installed")
		}
		for b.Loop() {
			if out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", tool, err, out)
			}
		}
		std = b.Elapsed() / time.Duration(b.N)
	})
	if kdiag > 0 && std > 0 {
		b.Logf("kdiag %s/op, %s %s/op: kdiag is %.1fx faster", kdiag, toolName, std, float64(std)/float64(kdiag))
	}
}
