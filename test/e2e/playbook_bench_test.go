package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
)

// BenchmarkJobRun measures an alert to a stored run through the Job
// executor (Job created, pod started, transcript streamed back through
// the log, Job deleted) against the same through the in-process executor
// and against the standard tool doing the Job's part by hand: kubectl
// create job with the same kdiag run, kubectl wait, kubectl logs, kubectl
// delete. Runbook wait-and-log with wait=0s (no cluster calls), one run at
// a time, alternating.
func BenchmarkJobRun(b *testing.B) {
	env := harness.Cluster(b)
	root, _ := harness.RepoRoot()
	bin := filepath.Join(b.TempDir(), "kdiag")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kdiag")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	const image = "kdiag-local:playbook-bench"
	env.ImportImage(b, image, bin)
	ns := fmt.Sprintf("pbbench-%d", time.Now().UnixNano()%1e6)
	env.Kubectl(b, "create", "namespace", ns)
	b.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	env.Kubectl(b, "create", "serviceaccount", playbook.DefaultJobServiceAccount, "-n", ns)
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		b.Fatal(err)
	}
	server := func(executor string, exec playbook.Executor) *playbooktest.Server {
		dir := b.TempDir()
		os.WriteFile(filepath.Join(dir, "token"), []byte(pbToken), 0o600)
		cfg := playbooktest.Config(b, dir, waitYAML(executor)+"dedupe_window: 1ns\n")
		if exec == nil {
			j := job.New(cfg, cs)
			j.Poll = 100 * time.Millisecond
			exec = j
		}
		s := playbooktest.Start(b, cfg, playbook.Options{Version: "bench", Specs: std.Specs(), Executor: exec})
		s.Token = pbToken
		return s
	}
	job := server(plainJobYAML(ns, image, ""), nil)
	local := server("", &playbook.Local{Specs: std.Specs(), Loader: (&playbook.Config{}).Loader(nil), Version: "bench"})
	alert := func(s *playbooktest.Server, i int) time.Duration {
		hook := playbooktest.KubePodNotReady("default", fmt.Sprintf("bench-%d", i))
		hook.Alerts[0].Labels = map[string]string{"alertname": "Wait", "wait": "0s"}
		start := time.Now()
		res := s.Alerts(b, hook, http.StatusOK)
		if m := s.Wait(b, res[0].Run, 2*time.Minute); m.Status != playbook.StatusOK {
			b.Fatalf("run %s: %s", m.Status, m.Message)
		}
		return time.Since(start)
	}
	kubectl := func(i int) time.Duration {
		name := fmt.Sprintf("manual-%d", i)
		start := time.Now()
		env.Kubectl(b, "create", "job", name, "-n", ns, "--image="+image, "--", "/kdiag", "run", "wait-and-log", "-p", "wait=0s", "--no-record")
		env.Kubectl(b, "wait", "-n", ns, "--for=condition=complete", "--timeout=120s", "job/"+name)
		if out := env.Kubectl(b, "logs", "-n", ns, "job/"+name); !strings.Contains(out, "Verdict") {
			b.Fatalf("kubectl logs: %s", out)
		}
		env.Kubectl(b, "delete", "job", name, "-n", ns, "--cascade=background", "--wait=false")
		return time.Since(start)
	}
	var tj, tl, tk time.Duration
	for i := 0; b.Loop(); i++ {
		tj += alert(job, i)
		tl += alert(local, i)
		tk += kubectl(i)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tj.Milliseconds())/n, "job-ms")
	b.ReportMetric(float64(tl.Milliseconds())/n, "local-ms")
	b.ReportMetric(float64(tk.Milliseconds())/n, "kubectl-job-ms")
	b.ReportMetric(float64(tj)/float64(tk), "job/kubectl")
}
