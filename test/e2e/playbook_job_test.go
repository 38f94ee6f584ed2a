package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
)

// kdiagTestImage is the kdiag image the Job executor's tests import (a
// tag of their own, so that other tests importing kdiag-local:v1 at the
// same time do not swap it under them).
const kdiagTestImage = "kdiag-local:playbook-e2e"

var kdiagImageOnce sync.Once

// kdiagImage imports the kdiag binary of this tree as kdiagTestImage.
func kdiagImage(t *testing.T, env *harness.Env) string {
	bin, _ := binaries(t)
	kdiagImageOnce.Do(func() { env.ImportImage(t, kdiagTestImage, bin) })
	return kdiagTestImage
}

// runnerNamespace creates a namespace for the Jobs with the
// ServiceAccount kdiag-runner; bound, it gets the ClusterRole of
// deploy/rbac.yaml (under a name of the test's own) through a
// ClusterRoleBinding, as deploy/ binds it.
func runnerNamespace(t *testing.T, env *harness.Env, bound bool) string {
	ns := namespace(t, env, "pbruns")
	env.Kubectl(t, "create", "serviceaccount", playbook.DefaultJobServiceAccount, "-n", ns)
	if !bound {
		return ns
	}
	root, _ := harness.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "deploy/rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if strings.Contains(doc, "\nkind: ClusterRole\n") && strings.Contains(doc, "\n  name: kdiag-playbooks\n") {
			role = strings.Replace(doc, "name: kdiag-playbooks", "name: "+ns, 1)
		}
	}
	if role == "" {
		t.Fatal("deploy/rbac.yaml has no ClusterRole")
	}
	p := filepath.Join(t.TempDir(), "role.yaml")
	os.WriteFile(p, []byte(role), 0o644)
	env.Kubectl(t, "apply", "-f", p)
	env.Kubectl(t, "create", "clusterrolebinding", ns, "--clusterrole="+ns, "--serviceaccount="+ns+":"+playbook.DefaultJobServiceAccount)
	t.Cleanup(func() { env.RunKubectl("delete", "clusterrolebinding,clusterrole", ns, "--wait=false") })
	return ns
}

// jobExecutor returns a maker of Job executors over the cluster.
func jobExecutor(t *testing.T, env *harness.Env) func(*playbook.Config) playbook.Executor {
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *playbook.Config) playbook.Executor {
		j := job.New(cfg, cs)
		j.Poll = 200 * time.Millisecond
		return j
	}
}

// noRunsLeft waits until no Job or pod of a run is left in ns.
func noRunsLeft(t *testing.T, env *harness.Env, ns string) {
	t.Helper()
	noneLeft(t, env, ns, "jobs,pods", job.RunLabel)
}

// noneLeft waits until no object of kinds matching selector is left in ns.
func noneLeft(t *testing.T, env *harness.Env, ns, kinds, selector string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := env.Kubectl(t, "get", kinds, "-n", ns, "-l", selector, "-o", "name")
		if strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind in %s:\n%s", ns, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitYAML routes the alert Wait to wait-and-log, which sleeps for the
// alert's label wait; job is the executor's section.
func waitYAML(job string) string {
	return `auth: {token_file: token}
` + job + `routes:
  - name: wait
    match: {alertname: Wait}
    runbook: wait-and-log
    params: {wait: "{{ .Labels.wait }}"}
`
}

// plainJobYAML is an executor: job section with no node access.
func plainJobYAML(jobsNS, image, extra string) string {
	return fmt.Sprintf("executor: job\njob:\n  namespace: %s\n  image: %s\n  image_pull_policy: Never\n  termination_grace: 10s\n%s", jobsNS, image, extra)
}

// postWait posts a Wait alert (a fingerprint of its own) and returns
// the run's id.
func postWait(t *testing.T, s *playbooktest.Server, wait string) string {
	t.Helper()
	hook := playbooktest.KubePodNotReady("default", "wait-"+wait+"-"+t.Name())
	hook.Alerts[0].Labels = map[string]string{"alertname": "Wait", "wait": wait}
	s.Token = pbToken
	res := s.Alerts(t, hook, http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res)
	}
	return res[0].Run
}

// TestJobExecutorCancel stops the server while a Job run sleeps: the Job
// is deleted, kdiag in its pod ends the transcript with status cancelled,
// the server stores the run as cancelled, and nothing is left behind.
func TestJobExecutorCancel(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, false)
	s := startServer(t, env, waitYAML(plainJobYAML(jobsNS, image, "")), jobExecutor(t, env))
	id := postWait(t, s, "120s")
	tp := s.Store().TranscriptPath(id)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(tp)
		if strings.Contains(string(b), `"type":"step_start","seq":4`) { // the step "wait"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached its wait step; transcript:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	s.Stop()
	took := time.Since(start)
	t.Logf("server stopped, run cancelled, in %s", took.Round(time.Millisecond))
	m, err := s.Store().Load(id)
	if err != nil {
		t.Fatal(err)
	}
	tr := readTranscript(t, tp)
	if m.Status != playbook.StatusCancelled || !strings.Contains(m.Message, "the server is shutting down") || tr.Footer.Status != transcript.StatusCancelled {
		t.Fatalf("run %s (%s), footer %+v", m.Status, m.Message, tr.Footer)
	}
	if took > 30*time.Second {
		t.Fatalf("cancelling took %s", took)
	}
	noRunsLeft(t, env, jobsNS)
}

// TestJobExecutorCancelAgent stops the server while a Job run of the seed
// runbook is tracing the app through a node agent pod: kdiag in the Job's
// pod ends the transcript cancelled, the app is running and untraced, and
// neither the Job, its pod nor the agent pod is left.
func TestJobExecutorCancelAgent(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, true)
	ns := namespace(t, env, "pbjc")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	y := strings.Replace(routeYAML("pod-not-ready", "never", "", jobYAML(env, jobsNS, image, false)), "trace: 5s", "trace: 60s\n      background: 60s\n      ephemeral: \"false\"\n      fix: \"false\"", 1)
	s := startServer(t, env, strings.Replace(y, "termination_grace: 10s", "termination_grace: 30s", 1), jobExecutor(t, env))
	id := started(t, s, ns)
	tp := s.Store().TranscriptPath(id)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(tp)
		if strings.Contains(string(b), `"builtin":"find_pid"`) { // strace_sample is next
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached strace_sample; transcript:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	start := time.Now()
	s.Stop()
	t.Logf("cancelled during strace_sample in %s", time.Since(start).Round(time.Millisecond))
	m, err := s.Store().Load(id)
	if err != nil {
		t.Fatal(err)
	}
	tr := readTranscript(t, tp)
	if m.Status != playbook.StatusCancelled || tr.Footer.Status != transcript.StatusCancelled {
		t.Fatalf("run %s (%s), footer %+v", m.Status, m.Message, tr.Footer)
	}
	pid := ""
	for _, e := range tr.Calls() {
		if e.Builtin == "find_pid" {
			var r struct{ PID int }
			json.Unmarshal(e.Result, &r)
			pid = strconv.Itoa(r.PID)
		}
	}
	if state, tracer := statusOf(pid); state == "gone" || tracer != "0" {
		t.Fatalf("app %s after the cancel: state %q, tracer %q", pid, state, tracer)
	}
	noRunsLeft(t, env, jobsNS)
	noneLeft(t, env, ns, "pods", "app.kubernetes.io/managed-by=kdiag,kdiag.io/role=agent")
}

// TestJobExecutorFailures: runs whose pod cannot start (no image, no
// ServiceAccount), one past the Job's deadline, and one whose
// ServiceAccount lacks the runbook's RBAC all end failed, saying why,
// with no Job left.
func TestJobExecutorFailures(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, false)
	jobs := jobExecutor(t, env)

	t.Run("image missing", func(t *testing.T) {
		s := startServer(t, env, waitYAML(plainJobYAML(jobsNS, "kdiag-local:no-such-tag", "")), jobs)
		start := time.Now()
		m := s.Wait(t, postWait(t, s, "1s"), time.Minute)
		if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "ErrImageNeverPull") {
			t.Fatalf("run %s: %s", m.Status, m.Message)
		}
		t.Logf("failed in %s: %s", time.Since(start).Round(time.Millisecond), m.Message)
	})

	t.Run("no service account", func(t *testing.T) {
		s := startServer(t, env, waitYAML(plainJobYAML(jobsNS, image, "  service_account_name: no-such-account\n")), jobs)
		m := s.Wait(t, postWait(t, s, "1s"), time.Minute)
		if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, `cannot create its pod`) || !strings.Contains(m.Message, `serviceaccount "no-such-account" not found`) {
			t.Fatalf("run %s: %s", m.Status, m.Message)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		s := startServer(t, env, waitYAML(plainJobYAML(jobsNS, image, "  active_deadline: 6s\n")), jobs)
		id := postWait(t, s, "60s")
		m := s.Wait(t, id, 2*time.Minute)
		if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "exceeded its deadline (activeDeadlineSeconds 6)") {
			t.Fatalf("run %s: %s", m.Status, m.Message)
		}
		if tr, _ := transcript.ReadFile(s.Store().TranscriptPath(id)); tr == nil || tr.Header == nil {
			t.Fatal("no transcript of the run that started")
		}
		t.Logf("%s", m.Message)
	})

	t.Run("rbac preflight", func(t *testing.T) {
		y := routeYAML("pod-not-ready", "never", "", plainJobYAML(jobsNS, image,
			"  host_network: true\n  env: {KUBERNETES_SERVICE_HOST: 127.0.0.1, KUBERNETES_SERVICE_PORT: \"6443\"}\n"))
		s := startServer(t, env, y, jobs)
		m := s.Wait(t, started(t, s, "default"), 2*time.Minute)
		want := fmt.Sprintf(`rbac: the current user "system:serviceaccount:%s:%s" cannot`, jobsNS, playbook.DefaultJobServiceAccount)
		if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, want) {
			t.Fatalf("run %s: %s\nwant %s", m.Status, m.Message, want)
		}
		if _, err := os.Stat(s.Store().TranscriptPath(m.ID)); err == nil {
			t.Fatal("a transcript for a run refused before it started")
		}
		t.Logf("%s", m.Message)
	})
	noRunsLeft(t, env, jobsNS)
}

// TestJobExecutorTwoReplicas gives one alert to two replicas of the
// server (their own state, one Jobs namespace), as Alertmanager may when
// it retries through a Service: one Job runs it, the other replica stores
// its run as a duplicate naming the episode marker; a third replica given
// the alert after both ended still does not run it (the dedupe window);
// nothing but the marker is left.
func TestJobExecutorTwoReplicas(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, true)
	yaml := waitYAML(plainJobYAML(jobsNS, image, ""))
	jobs := jobExecutor(t, env)
	a, b := startServer(t, env, yaml, jobs), startServer(t, env, yaml, jobs)
	hook := playbooktest.KubePodNotReady("default", "replicas-"+strings.ToLower(t.Name()))
	hook.Alerts[0].Labels = map[string]string{"alertname": "Wait", "wait": "1s"}
	a.Token, b.Token = pbToken, pbToken
	ra, rb := a.Alerts(t, hook, http.StatusOK), b.Alerts(t, hook, http.StatusOK)
	if ra[0].Outcome != playbook.OutcomeStarted || rb[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("each replica admits the alert on its own: %+v %+v", ra, rb)
	}
	ma, mb := a.Wait(t, ra[0].Run, 3*time.Minute), b.Wait(t, rb[0].Run, 3*time.Minute)
	statuses := ma.Status + "," + mb.Status
	if statuses != "ok,duplicate" && statuses != "duplicate,ok" {
		t.Fatalf("runs ended %s (%q, %q); want one ok and one duplicate", statuses, ma.Message, mb.Message)
	}
	dup := ma
	if mb.Status == playbook.StatusDuplicate {
		dup = mb
	}
	if !strings.Contains(dup.Message, "another replica of the server runs this alert: the episode marker configmap "+jobsNS+"/kdiag-episode-") {
		t.Fatalf("duplicate's message %q", dup.Message)
	}
	c := startServer(t, env, yaml, jobs)
	c.Token = pbToken
	rc := c.Alerts(t, hook, http.StatusOK)
	if mc := c.Wait(t, rc[0].Run, time.Minute); mc.Status != playbook.StatusDuplicate {
		t.Fatalf("a third replica, within the dedupe window: %s %q", mc.Status, mc.Message)
	}
	noRunsLeft(t, env, jobsNS)
	if out := env.Kubectl(t, "get", "configmaps", "-n", jobsNS, "-l", job.EpisodeLabel, "-o", "jsonpath={.items[*].metadata.annotations.kdiag\\.io/expires}"); strings.Count(out, "T") != 1 {
		t.Fatalf("episode markers: %q; want one, with an expiry", out)
	}
}

// TestJobForgedFrameFromWorkloadLog is the forged-change attack through a
// real Job: the diagnosed container's log holds transcript frames (one
// unsigned, one with a made-up HMAC) claiming an applied patch_configmap,
// and readiness-probe-failing logs the container's last log line. The
// console prints it escaped and indented, so it never starts a line of the
// Job's log: the server's transcript has the line only inside a print
// event, no forged call, and the run is not damaged.
func TestJobForgedFrameFromWorkloadLog(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, true)
	ns := namespace(t, env, "forge")
	forged := `{"type":"call","seq":3,"builtin":"patch_configmap","effect":"write","args":{"name":"victim"},"mutation":{"applied":true,"target":"configmap ` + ns + `/victim"}}`
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "my-broken-pod", "namespace": ns},
		"spec": map[string]any{"terminationGracePeriodSeconds": 1, "containers": []any{map[string]any{
			"name": "app", "image": "httpserver-local:v1", "imagePullPolicy": "Never",
			"env":            []any{map[string]any{"name": "FORGED", "value": forged}},
			"command":        []any{"/bin/busybox", "sh", "-c", `mkdir -p /tmp/w; echo "kdiag-transcript 3 1/1 $FORGED"; echo "kdiag-transcript 3 1/1 ` + strings.Repeat("0", 64) + ` $FORGED"; exec /bin/busybox httpd -f -p 8080 -h /tmp/w`},
			"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 8080}, "periodSeconds": 2},
		}}}}
	b, _ := json.Marshal(pod)
	p := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(p, b, 0o644)
	env.Kubectl(t, "apply", "-f", p)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	if l := env.Kubectl(t, "logs", "my-broken-pod", "-n", ns); !strings.HasPrefix(l, "kdiag-transcript 3 1/1 {") {
		t.Fatalf("the workload's log does not start with a frame: %q", l)
	}

	s := startServer(t, env, routeYAML("pod-not-ready-job", "dry-run", "", jobYAML(env, jobsNS, image, true)), jobExecutor(t, env))
	m := s.Wait(t, started(t, s, ns), 4*time.Minute)
	if m.Damaged != "" {
		t.Fatalf("run damaged: %s", m.Damaged)
	}
	tr := storedTranscript(t, s, m.ID)
	logged := false
	for _, e := range tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "patch_configmap" {
			t.Fatalf("a forged call reached the transcript: %s", e.Args)
		}
		if e.Type == transcript.TypePrint && strings.Contains(e.Message, "kdiag-transcript 3 1/1") {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("the workload's log line was not logged by the runbook (the attack was not tried); status %s: %s", m.Status, m.Message)
	}
	noRunsLeft(t, env, jobsNS)
}
