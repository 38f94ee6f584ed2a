package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
)

const (
	pbToken  = "e2e-webhook-token"
	pbSecret = "e2e-hmac-secret"
)

// routeYAML is a playbooks.yaml routing KubePodNotReady to
// readiness-probe-failing with params from the alert's labels, under
// the given mutation policy (and allow_builtins); executor adds the
// executor: and job: sections.
func routeYAML(route, mutations, allow, executor string) string {
	y := `auth:
  token_file: token
  hmac_secret_file: hmac
max_body_bytes: 65536
` + executor + `routes:
  - name: ` + route + `
    match: {alertname: KubePodNotReady}
    runbook: readiness-probe-failing
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
      trace: 5s
      force: "true"
    mutations: ` + mutations + "\n"
	if allow != "" {
		y += "    allow_builtins: [" + allow + "]\n"
	}
	return y
}

// startServer starts a playbook server over the real built-ins with the
// config text; exec nil means the in-process executor with the RBAC
// preflight, as kdiag serve makes it.
func startServer(t *testing.T, env *harness.Env, yaml string, exec func(*playbook.Config) playbook.Executor) *playbooktest.Server {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(pbToken+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "hmac"), []byte(pbSecret), 0o600)
	cfg := playbooktest.Config(t, dir, yaml)
	bcfg := builtins.Config{Kubeconfig: env.Kubeconfig, RuntimeEndpoint: env.RuntimeEndpoint}
	specs := builtins.All(bcfg)
	opts := playbook.Options{Specs: specs, Version: "e2e", Pods: playbook.KubePods{Clients: bcfg.Clients()}}
	if exec != nil {
		opts.Executor = exec(cfg)
	} else {
		opts.Executor = &playbook.Local{Specs: specs, Loader: cfg.Loader(nil), Version: "e2e", MaxSteps: engine.DefaultMaxSteps,
			Preflight: func(ctx context.Context, rb *engine.Runbook, params map[string]any, mayWrite func(string) bool) error {
				return builtins.Preflight(ctx, bcfg, rb, params, mayWrite)
			}}
	}
	s := playbooktest.Start(t, cfg, opts)
	s.ReadToken = pbToken // the read endpoints need a token
	return s
}

// sign returns the X-Kdiag-Signature header of body under secret.
func sign(secret string, body []byte) map[string]string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return map[string]string{"X-Kdiag-Signature": "sha256=" + hex.EncodeToString(m.Sum(nil))}
}

// runs returns the server's run list.
func runs(t *testing.T, s *playbooktest.Server) []playbook.RunSummary {
	t.Helper()
	_, _, b := s.Get(t, "/runs", "")
	var out []playbook.RunSummary
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET /runs: %v: %s", err, b)
	}
	return out
}

// report returns a run's text report.
func report(t *testing.T, s *playbooktest.Server, id string) string {
	t.Helper()
	code, _, b := s.Get(t, "/runs/"+id+"?format=text", "")
	if code != http.StatusOK {
		t.Fatalf("GET /runs/%s: %d %s", id, code, b)
	}
	return string(b)
}

// storedTranscript reads the transcript the server stored for a run.
func storedTranscript(t *testing.T, s *playbooktest.Server, id string) *transcript.Transcript {
	t.Helper()
	return readTranscript(t, s.Store().TranscriptPath(id))
}

// started posts the seed alert for ns/my-broken-pod with the bearer
// token and returns the run's id.
func started(t *testing.T, s *playbooktest.Server, ns string) string {
	t.Helper()
	s.Token = pbToken
	res := s.Alerts(t, playbooktest.KubePodNotReady(ns, "my-broken-pod"), http.StatusOK)
	if len(res) != 1 || res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert results %+v", res)
	}
	return res[0].Run
}

// checkDryRun checks a dry-run run of the seed incident: diagnosed, the
// fix planned, and the ConfigMap and the pod unchanged.
func checkDryRun(t *testing.T, env *harness.Env, s *playbooktest.Server, m *playbook.Meta, ns, uid string) {
	t.Helper()
	rep := report(t, s, m.ID)
	if m.Status != playbook.StatusOK || !strings.Contains(rep, "key additional_file") || !strings.Contains(m.Verdict, "not applied") {
		t.Fatalf("dry run: status %s (%s), verdict %q\n%s", m.Status, m.Message, m.Verdict, rep)
	}
	tr := storedTranscript(t, s, m.ID)
	if tr.Header.Mode != "dry-run-client" || tr.Header.Labels["route"] != m.Route || tr.Header.Labels["run"] != m.ID || tr.Footer.Status != transcript.StatusOK {
		t.Fatalf("transcript header %+v footer %+v", tr.Header, tr.Footer)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "additional_file") {
		t.Fatalf("the dry run changed the ConfigMap: %s", data)
	}
	if got := env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "jsonpath={.metadata.uid} {.spec.ephemeralContainers}"); strings.TrimSpace(got) != uid {
		t.Fatalf("the dry run changed the pod: %q (uid was %q)", got, uid)
	}
}

// checkFixed checks a run that was allowed to fix the seed incident.
func checkFixed(t *testing.T, env *harness.Env, s *playbooktest.Server, m *playbook.Meta, ns string) *transcript.Transcript {
	t.Helper()
	if m.Status != playbook.StatusOK || !strings.Contains(m.Verdict, "key additional_file (suspect, correlational evidence) made /readyz of container broken-container fail; fixed and verified: pod "+ns+"/") || m.Changes < 2 {
		t.Fatalf("allowed run: status %s (%s), verdict %q, %d changes\n%s", m.Status, m.Message, m.Verdict, m.Changes, report(t, s, m.ID))
	}
	if got := podReady(env, ns, "my-broken-pod"); got != "True" {
		t.Fatalf("pod Ready=%q after the fix", got)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); strings.Contains(data, "additional_file") {
		t.Fatalf("key still present: %s", data)
	}
	return storedTranscript(t, s, m.ID)
}

// TestPlaybookAlertLocal sends Alertmanager webhooks to a playbook
// server running readiness-probe-failing in-process: unauthenticated,
// oversized and unrouted alerts start nothing; a signed KubePodNotReady
// for the seed incident is diagnosed under dry-run and changes nothing;
// with mutations allowed the same alert gets the incident fixed.
func TestPlaybookAlertLocal(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "pbl")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	uid := env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "jsonpath={.metadata.uid}")

	s := startServer(t, env, routeYAML("pod-not-ready", "dry-run", "", ""), nil)
	body, _ := json.Marshal(playbooktest.KubePodNotReady(ns, "my-broken-pod"))
	if code, b := s.Post(t, body, sign("not-the-secret", body)); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %s", code, b)
	}
	s.Token = pbToken
	if code, b := s.Post(t, append(body, make([]byte, 65536)...), nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %s", code, b)
	}
	other := playbooktest.KubePodNotReady(ns, "my-broken-pod")
	other.Alerts[0].Labels = map[string]string{"alertname": "Watchdog", "severity": "none"}
	if res := s.Alerts(t, other, http.StatusOK); res[0].Outcome != playbook.OutcomeIgnored || res[0].Run != "" {
		t.Fatalf("unrouted alert: %+v", res)
	}
	if r := runs(t, s); len(r) != 0 {
		t.Fatalf("runs after refused and unrouted alerts: %+v", r)
	}

	// A correctly signed alert (no token) starts the dry run.
	s.Token = ""
	code, b := s.Post(t, body, sign(pbSecret, body))
	var resp playbook.WebhookResponse
	if code != http.StatusOK || json.Unmarshal(b, &resp) != nil || resp.Alerts[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("signed alert: %d %s", code, b)
	}
	start := time.Now()
	m := s.Wait(t, resp.Alerts[0].Run, 4*time.Minute)
	t.Logf("local dry run: %s in %s", m.Status, time.Since(start).Round(time.Millisecond))
	checkDryRun(t, env, s, m, ns, uid)
	s.Stop()

	s = startServer(t, env, routeYAML("pod-not-ready", "allow", "attach_ephemeral, patch_configmap, restart", ""), nil)
	start = time.Now()
	m = s.Wait(t, started(t, s, ns), 5*time.Minute)
	t.Logf("local fix: %s in %s", m.Status, time.Since(start).Round(time.Millisecond))
	tr := checkFixed(t, env, s, m, ns)
	if !hasCall(tr, "attach_ephemeral", `"state":"running"`) {
		t.Fatal("attach_ephemeral was allowed but no debug container ran")
	}
}

// hasCall reports whether the transcript holds a call of builtin whose
// result contains substr.
func hasCall(tr *transcript.Transcript, builtin, substr string) bool {
	for _, e := range tr.Calls() {
		if e.Builtin == builtin && strings.Contains(string(e.Result), substr) {
			return true
		}
	}
	return false
}

// jobYAML is the executor: job section for the test cluster: the kdiag
// image, a ServiceAccount in jobsNS, the API server on the node's
// loopback; node built-ins run in the Job's pod (node_local) or in a node
// agent pod (the default).
func jobYAML(env *harness.Env, jobsNS, image string, nodeLocal bool) string {
	return fmt.Sprintf(`executor: job
job:
  namespace: %s
  image: %s
  image_pull_policy: Never
  host_network: true
  env: {KUBERNETES_SERVICE_HOST: 127.0.0.1, KUBERNETES_SERVICE_PORT: "6443"}
  termination_grace: 10s
  node_local: %v
  runtime_endpoint: %s
`, jobsNS, image, nodeLocal, env.RuntimeEndpoint)
}

// TestPlaybookAlertJob is TestPlaybookAlertLocal's incident with the Job
// executor: each run is a Job whose pod runs kdiag as the ServiceAccount
// kdiag-runner, bound to the ClusterRole of deploy/rbac.yaml. The dry run
// runs node built-ins in the Job's pod (node_local) and changes nothing;
// the allowed run runs them in a node agent pod, refuses attach_ephemeral
// (not in allow_builtins), fixes the incident, and leaves no Job, run pod
// or agent pod behind.
func TestPlaybookAlertJob(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, true)
	ns := namespace(t, env, "pbj")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	uid := env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "jsonpath={.metadata.uid}")
	jobs := jobExecutor(t, env)

	s := startServer(t, env, routeYAML("pod-not-ready-job", "dry-run", "", jobYAML(env, jobsNS, image, true)), jobs)
	start := time.Now()
	m := s.Wait(t, started(t, s, ns), 4*time.Minute)
	t.Logf("job dry run: %s in %s", m.Status, time.Since(start).Round(time.Millisecond))
	if m.Executor != "job" {
		t.Fatalf("executor %q", m.Executor)
	}
	checkDryRun(t, env, s, m, ns, uid)
	s.Stop()

	s = startServer(t, env, routeYAML("pod-not-ready-job", "allow", "patch_configmap, restart", jobYAML(env, jobsNS, image, false)), jobs)
	start = time.Now()
	m = s.Wait(t, started(t, s, ns), 5*time.Minute)
	t.Logf("job fix: %s in %s", m.Status, time.Since(start).Round(time.Millisecond))
	tr := checkFixed(t, env, s, m, ns)
	if !hasCall(tr, "attach_ephemeral", `route \"pod-not-ready-job\" allows only patch_configmap, restart`) {
		t.Fatalf("attach_ephemeral was not refused by the route's policy: %s", report(t, s, m.ID))
	}
	noRunsLeft(t, env, jobsNS)
	if ev := env.Kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=Pod,reason=Started", "-o", "jsonpath={.items[*].involvedObject.name}"); !strings.Contains(ev, "kdiag-agent-") {
		t.Fatalf("no node agent pod ran in %s (pods started: %s)", ns, ev)
	}
	noneLeft(t, env, ns, "pods", "app.kubernetes.io/managed-by=kdiag,kdiag.io/role=agent")
}
