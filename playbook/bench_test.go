package playbook_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWebhookDeduplicated measures what one webhook costs the server
// when it starts nothing: a real HTTP round trip with the bearer check,
// the JSON decode of a KubePodNotReady payload, routing, template
// rendering and the dedupe lookup.
func BenchmarkWebhookDeduplicated(b *testing.B) {
	s, _ := start(b, config(b, b.TempDir(), "", slowRoute(b, "10m")))
	body := mustJSON(podAlerts("web-0"))
	if code, out := s.Post(b, body, nil); code != http.StatusOK {
		b.Fatalf("%d %s", code, out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, out := s.Post(b, body, nil); code != http.StatusOK {
			b.Fatalf("%d %s", code, out)
		}
	}
}

// BenchmarkAlertToStoredRun measures the throughput of alerts that each
// start a run of slow.star with wait=0s (two steps, no cluster):
// queueing, engine.Run, the transcript (synced at step boundaries), three
// reports and run.json, one run at a time like the exec bridge below.
func BenchmarkAlertToStoredRun(b *testing.B) {
	s, _ := start(b, config(b, b.TempDir(), "concurrency: 1\nqueue: 100000\n", slowRoute(b, "0s")))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := podAlerts(fmt.Sprintf("web-%d", i))
		if code, out := s.Post(b, mustJSON(h), nil); code != http.StatusOK {
			b.Fatalf("%d %s", code, out)
		}
	}
	for {
		n, _ := strconv.Atoi(metric(b, s, `kdiag_runs_total{status="ok"}`))
		if n == b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkExecKdiagRunPerAlert is the alternative to the server: a
// webhook-to-script bridge that execs `kdiag run` for each alert, on the
// same runbook and params, recording a transcript and printing the report.
func BenchmarkExecKdiagRunPerAlert(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "kdiag")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kdiag").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	rb := testdata(b, "slow.star")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "run", rb, "-p", fmt.Sprintf("pod=web-%d", i), "-p", "wait=0s", "--record", filepath.Join(dir, fmt.Sprintf("%d.jsonl", i)))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "none"))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("kdiag run: %v\n%s", err, out)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}
