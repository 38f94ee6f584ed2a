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
}

// TestFaultServeJobRidesOutFreeze: kdiag serve's Job executor runs
// wait-and-log (20 s) in a Job; a component (the API server, the kubelet,
// containerd) is frozen for 12 s while the Job's pod runs. The run is not
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
job: {namespace: %s, image: kdiag-local:faults, image_pull_policy: Never, termination_grace: 10s}
routes:
  - name: wait
    match: {alertname: Wait}
    runbook: wait-and-log
    params: {wait: "20s"}
`, ns))
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		t.Fatal(err)
	}
	j := job.New(cfg, cs)
	j.Poll = 200 * time.Millisecond
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: builtins.All(builtins.Config{Kubeconfig: env.Kubeconfig}), Version: "faults", Executor: j})
	s.Token, s.ReadToken = token, token
	hook := playbooktest.KubePodNotReady("default", "faults-serve")
	hook.Alerts[0].Labels = map[string]string{"alertname": "Wait"}
	res := s.Alerts(t, hook, http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", job.RunLabel, "-o", "jsonpath={.items[*].status.phase}")
		if strings.TrimSpace(out) == "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run's pod never ran: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	thaw := freeze(t, env, component, 60*time.Second)
	frozeAt := time.Now()
	time.Sleep(d)
	thaw()
	m := s.Wait(t, res[0].Run, 3*time.Minute)
	t.Logf("FIGURES serve Job run, %s frozen %s: run %s %q, ended %s after the freeze", component, d, m.Status, m.Message, time.Since(frozeAt).Round(100*time.Millisecond))
	if m.Status != playbook.StatusOK || !strings.HasPrefix(m.Verdict, "waited 20s") {
		t.Fatalf("run after %s froze for %s: %s %q verdict %q", component, d, m.Status, m.Message, m.Verdict)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "jobs,pods", "-n", ns, "-l", job.RunLabel, "-o", "name")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
