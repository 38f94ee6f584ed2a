//go:build faults

package faults

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
)

// serveFreezes are the components frozen while a Job run of kdiag serve
// runs, and for how long.
var serveFreezes = []struct {
	component string
	freeze    time.Duration
}{
	{"kube-apiserver", 12 * time.Second},
	{"kubelet", 12 * time.Second},
	{"containerd", 12 * time.Second},
	{"etcd", 12 * time.Second},
}

// TestFaultServeJobRidesOutFreeze: kdiag serve's Job executor runs
// wait-and-log (20 s) in a Job; a component (the API server, the kubelet,
// containerd, etcd) is frozen for 12 s while the Job's pod runs. The run is not
// dropped: the Job follower resumes once the component answers again
// (its log stream, served by the kubelet, stalls and goes on), the run
// ends ok with its transcript read back from the pod (its verdict), and no
// Job or pod of the run is left.
func TestFaultServeJobRidesOutFreeze(t *testing.T) {
	for _, c := range serveFreezes {
		t.Run(c.component, func(t *testing.T) { serveJobFreeze(t, c.component, c.freeze) })
	}
}

func serveJobFreeze(t *testing.T, component string, d time.Duration) {
	env := harness.Cluster(t)
	sj := startServeJob(t, env, "20s", "")
	sj.waitPhase(t, "Running")
	thaw := freeze(t, env, component, 60*time.Second)
	frozeAt := time.Now()
	time.Sleep(d)
	thaw()
	m := sj.s.Wait(t, sj.run, 3*time.Minute)
	t.Logf("FIGURES serve Job run, %s frozen %s: run %s %q, ended %s after the freeze", component, d, m.Status, m.Message, time.Since(frozeAt).Round(100*time.Millisecond))
	if m.Status != playbook.StatusOK || !strings.HasPrefix(m.Verdict, "waited 20s") {
		t.Fatalf("run after %s froze for %s: %s %q verdict %q", component, d, m.Status, m.Message, m.Verdict)
	}
	sj.noneLeft(t, 60*time.Second)
}

// serveJob is a kdiag serve with the Job executor, its Jobs' namespace
// and the run of one alert routed to wait-and-log.
type serveJob struct {
	env *harness.Env
	s   *playbooktest.Server
	ns  string
	run string
}

// startServeJob starts kdiag serve with the Job executor (newServeJob)
// and gives it the alert.
func startServeJob(t *testing.T, env *harness.Env, wait, jobExtra string) *serveJob {
	t.Helper()
	sj := newServeJob(t, env, wait, jobExtra)
	sj.alert(t)
	return sj
}

// newServeJob starts kdiag serve with the Job executor (Jobs in a fresh
// namespace; extra job: settings in jobExtra, e.g. ", active_deadline:
// 30s"), its one route running wait-and-log for wait.
func newServeJob(t *testing.T, env *harness.Env, wait, jobExtra string) *serveJob {
	t.Helper()
	bin, _ := binaries(t)
	env.ImportImage(t, "kdiag-local:faults", bin)
	b := make([]byte, 3)
	rand.Read(b)
	ns := "faults-jobs-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	env.Kubectl(t, "create", "serviceaccount", playbook.DefaultJobServiceAccount, "-n", ns)

	const token = "faults-token-0123456789abcdef"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	cfg := playbooktest.Config(t, dir, fmt.Sprintf(`auth: {token_file: token}
executor: job
job: {namespace: %s, image: kdiag-local:faults, image_pull_policy: Never, termination_grace: 10s%s}
routes:
  - name: wait
    match: {alertname: Wait}
    runbook: wait-and-log
    params: {wait: %q}
`, ns, jobExtra, wait))
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		t.Fatal(err)
	}
	j := job.New(cfg, cs)
	j.Poll = 200 * time.Millisecond
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: builtins.All(builtins.Config{Kubeconfig: env.Kubeconfig}), Version: "faults", Executor: j})
	s.Token, s.ReadToken = token, token
	return &serveJob{env: env, s: s, ns: ns}
}

// alert gives the server the alert its route runs.
func (sj *serveJob) alert(t *testing.T) {
	t.Helper()
	hook := playbooktest.KubePodNotReady("default", "faults-serve")
	hook.Alerts[0].Labels = map[string]string{"alertname": "Wait"}
	res := sj.s.Alerts(t, hook, http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res)
	}
	sj.run = res[0].Run
}

// waitPhase waits until the run's pod is in phase.
func (sj *serveJob) waitPhase(t *testing.T, phase string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, _ := sj.env.RunKubectl("get", "pods", "-n", sj.ns, "-l", job.RunLabel, "-o", "jsonpath={.items[*].status.phase}")
		if strings.TrimSpace(out) == phase {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run's pod never was %s: %q", phase, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// noneLeft waits, up to limit, until no Job, pod or frame-key Secret of
// the run is left.
func (sj *serveJob) noneLeft(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out, _, _ := sj.env.RunKubectl("get", "jobs,pods,secrets", "-n", sj.ns, "-l", job.RunLabel, "-o", "name")
		if strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
