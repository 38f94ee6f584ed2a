package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// fanoutYAML routes two alerts over the fleet test's pods to
// readiness-probe-failing, one run per pod: AppPodsNotReady, a custom
// alert carrying app= (the selector matches the Deployment's 3 broken
// pods and the healthy bare pod), and KubeDeploymentReplicasMismatch
// (the Deployment's 3 pods).
func fanoutYAML(executor string) string {
	params := `    params:
      namespace: "{{ .Labels.namespace }}"
      fix: "false"
      ephemeral: "false"
      trace: 2s
    mutations: dry-run
`
	return `auth:
  token_file: token
  hmac_secret_file: hmac
` + executor + `routes:
  - name: app-pods
    match: {alertname: AppPodsNotReady}
    runbook: readiness-probe-failing
` + params + `    fanout:
      selector: {app: "{{ .Labels.app }}"}
      concurrency: 4
  - name: deployment
    match: {alertname: KubeDeploymentReplicasMismatch}
    runbook: readiness-probe-failing
` + params + `    fanout:
      owner: {kind: Deployment, name: "{{ .Labels.deployment }}"}
      max_pods: 5
`
}

// appPodsNotReady is a custom workload-level alert naming app=APP.
func appPodsNotReady(ns, app string) playbook.Webhook {
	h := playbooktest.KubeDeploymentReplicasMismatch(ns, app)
	h.Alerts[0].Labels = map[string]string{"alertname": "AppPodsNotReady", "namespace": ns, "app": app, "severity": "warning"}
	h.Alerts[0].Fingerprint = "a1" + h.Alerts[0].Fingerprint[2:]
	return h
}

// checkSet checks a finished set over the fleet manifests: its pods
// ran ok, the broken ones grouped under the ConfigMap key's verdict.
func checkSet(t *testing.T, m *playbook.Meta, ns string, broken, healthy int) {
	t.Helper()
	key := "ConfigMap " + ns + "/myconfig key additional_file"
	set := m.Set
	if m.Status != playbook.StatusOK || set == nil || len(set.Pods) != broken+healthy || len(set.Groups) != 1+min(healthy, 1) ||
		len(set.Groups[0].Pods) != broken || !strings.Contains(set.Groups[0].Verdict, key) {
		t.Fatalf("set: %s (%s) verdict %q set %+v", m.Status, m.Message, m.Verdict, set)
	}
	if healthy > 0 && (set.Groups[1].Pods[0].Pod != "web-ok" || strings.Contains(set.Groups[1].Verdict, key)) {
		t.Fatalf("healthy group: %+v", set.Groups[1])
	}
	for _, o := range set.Pods {
		if o.Status != playbook.StatusOK || o.Node == "" || o.Transcript == "" {
			t.Errorf("pod %+v", o)
		}
	}
}

// untarSet fetches a set's transcripts.tar and extracts it, returning the
// directory of its files.
func untarSet(t *testing.T, s *playbooktest.Server, id string) string {
	t.Helper()
	code, _, b := s.Get(t, "/runs/"+id+"/transcripts.tar", "")
	if code != http.StatusOK {
		t.Fatalf("transcripts.tar: %d %s", code, b)
	}
	root := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil || strings.Contains(h.Name, "..") {
			t.Fatalf("tar: %v %q", err, h.Name)
		}
		p := filepath.Join(root, h.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		data, _ := io.ReadAll(tr)
		os.WriteFile(p, data, 0o644)
	}
	return filepath.Join(root, id)
}

// TestPlaybookFanout: kdiag serve (in-process executor) receives
// workload-level alerts over the fleet test's pods. The app=web alert
// runs the runbook on the 4 pods it matches, one per node, a transcript
// each; the set groups the 3 broken replicas under the ConfigMap key and
// the healthy pod apart; a repeat is deduplicated as a set; the fetched
// set reads back with kdiag report and kdiag replay. The Deployment alert
// runs on the Deployment's 3 pods only; a hostile deployment label starts
// nothing.
func TestPlaybookFanout(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "pbfanout")
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(p, []byte(fleetManifests), 0o644)
	env.Kubectl(t, "apply", "-n", ns, "-f", p)
	deployPods(t, env, ns)
	env.Kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/web-ok", "--timeout=90s")

	s := startServer(t, env, fanoutYAML(""), nil)
	s.Token = pbToken
	res := s.Alerts(t, appPodsNotReady(ns, "web"), http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted || res[0].Route != "app-pods" {
		t.Fatalf("app alert: %+v", res)
	}
	id := res[0].Run
	start := time.Now()
	m := s.Wait(t, id, 6*time.Minute)
	t.Logf("set of %d pods: %s in %s: %s", len(m.Set.Pods), m.Status, time.Since(start).Round(time.Millisecond), m.Verdict)
	checkSet(t, m, ns, 3, 1)
	if m.Set.Selector != "app=web" || !strings.HasPrefix(m.Verdict, "3 of 4 pods: ") || !strings.Contains(m.Verdict, "; 1 of 4 pods: ") {
		t.Fatalf("set selector %q verdict %q", m.Set.Selector, m.Verdict)
	}
	if again := s.Alerts(t, appPodsNotReady(ns, "web"), http.StatusOK); again[0].Outcome != playbook.OutcomeDeduplicated || again[0].Run != id {
		t.Fatalf("repeat: %+v", again)
	}
	_, _, text := s.Get(t, "/runs/"+id+"?format=text", "")
	if !strings.Contains(string(text), "3 of 4 pods: ") || !strings.Contains(string(text), ns+"/web-ok (node ") {
		t.Fatalf("set text:\n%s", text)
	}
	if code, _, b := s.Get(t, "/runs/"+id+"/pods/web-ok?format=text", ""); code != http.StatusOK || !strings.Contains(string(b), "web-ok") {
		t.Fatalf("pod report: %d\n%s", code, b)
	}

	dir := untarSet(t, s, id)
	rep, errOut, code := kdiag(t, env, "report", dir, "-o", "json")
	var sum fleet.Summary
	if code != 0 || json.Unmarshal([]byte(rep), &sum) != nil || len(sum.Groups) != 2 || sum.Groups[0].Verdict != m.Set.Groups[0].Verdict || sum.Selector != "app=web" {
		t.Fatalf("kdiag report of the fetched set: exit %d %+v\n%s\n%s", code, sum, rep, errOut)
	}
	out, errOut, code := kdiag(t, env, "replay", dir)
	if code != 0 || !strings.Contains(out, "3 of 4 pods: ") || !strings.Contains(out, "1 of 4 pods: ") {
		t.Fatalf("kdiag replay of the fetched set: exit %d\n%s\n%s", code, out, errOut)
	}

	res = s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch(ns, "web"), http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted || res[0].Route != "deployment" {
		t.Fatalf("deployment alert: %+v", res)
	}
	m = s.Wait(t, res[0].Run, 6*time.Minute)
	checkSet(t, m, ns, 3, 0)
	if m.Set.Owner != "Deployment/web" || m.Set.Selector != "app=web,tier=deploy" || !strings.HasPrefix(m.Verdict, "3 of 3 pods: ") {
		t.Fatalf("deployment set: owner %q selector %q verdict %q", m.Set.Owner, m.Set.Selector, m.Verdict)
	}

	hostile := playbooktest.KubeDeploymentReplicasMismatch(ns, "web,web-ok")
	if res := s.Alerts(t, hostile, http.StatusOK); res[0].Outcome != playbook.OutcomeError || res[0].Run != "" || !strings.Contains(res[0].Reason, `owner.name "web,web-ok" is not an object name`) {
		t.Fatalf("hostile alert: %+v", res)
	}
	if r := runs(t, s); len(r) != 2 {
		t.Fatalf("runs: %+v", r)
	}
	checkFanoutRole(t, env, ns)
}

// checkFanoutRole resolves the fleet manifests' pods as a ServiceAccount
// bound to deploy/rbac-fanout.yaml's ClusterRole (under a name of the
// test's own), as kdiag serve does in the cluster: the shipped role is
// enough for each kind of target.
func checkFanoutRole(t *testing.T, env *harness.Env, ns string) {
	t.Helper()
	root, _ := harness.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "deploy/rbac-fanout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := strings.Split(string(b), "\n---\n")[0]
	if !strings.Contains(role, "\nkind: ClusterRole\n") {
		t.Fatalf("deploy/rbac-fanout.yaml: the ClusterRole is not first:\n%s", role)
	}
	name := ns + "-fanout"
	p := filepath.Join(t.TempDir(), "role.yaml")
	os.WriteFile(p, []byte(strings.Replace(role, "name: kdiag-fanout", "name: "+name, 1)), 0o644)
	env.Kubectl(t, "apply", "-f", p)
	env.Kubectl(t, "create", "serviceaccount", "fanout", "-n", ns)
	env.Kubectl(t, "create", "clusterrolebinding", name, "--clusterrole="+name, "--serviceaccount="+ns+":fanout")
	t.Cleanup(func() { env.RunKubectl("delete", "clusterrolebinding,clusterrole", name, "--wait=false") })

	as := builtins.Config{Kubeconfig: env.Kubeconfig, Overrides: &clientcmd.ConfigOverrides{AuthInfo: clientcmdapi.AuthInfo{Impersonate: "system:serviceaccount:" + ns + ":fanout"}}}
	pods := playbook.KubePods{Clients: as.Clients()}
	ctx := context.Background()
	var sel, owner string
	// RBAC changes reach the authorizer's cache within a moment.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sel, err = pods.WorkloadSelector(ctx, ns, "Deployment", "web"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || sel != "app=web,tier=deploy" {
		t.Fatalf("as the fan-out role: deployment selector %q: %v", sel, err)
	}
	targets, err := pods.Pods(ctx, ns, sel)
	if err != nil || len(targets) != 3 {
		t.Fatalf("as the fan-out role: pods %v: %v", targets, err)
	}
	if sel, owner, err = pods.ReplicaSelector(ctx, ns, targets[0].Pod); err != nil || owner != "Deployment/web" {
		t.Fatalf("as the fan-out role: replicas of %s: %q %q %v", targets[0].Pod, sel, owner, err)
	}
	if _, err := pods.Pods(ctx, "kube-system", "app=web"); err != nil {
		t.Fatalf("as the fan-out role: list pods in another namespace: %v", err)
	}
	// The impersonation is in effect: the role reads nothing else.
	cs, _, err := as.Clients().Kube()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("as the fan-out role: list configmaps: %v, want forbidden", err)
	}
}

// TestPlaybookFanoutJob is TestPlaybookFanout's Deployment alert with the
// Job executor: a Job per pod (one per node at a time), each streaming
// its pod's transcript back; the set groups the 3 replicas alike and no
// Job or pod is left. A second replica of the server given the same
// alert afterwards finds the set's episode claimed: its set is a
// duplicate and starts no Job; of two replicas given a new episode at
// once, one runs the set and the other is a duplicate.
func TestPlaybookFanoutJob(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := runnerNamespace(t, env, true)
	ns := namespace(t, env, "pbfanoutj")
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(p, []byte(fleetManifests), 0o644)
	env.Kubectl(t, "apply", "-n", ns, "-f", p)
	deployPods(t, env, ns)

	y := fanoutYAML(jobYAML(env, jobsNS, image, true))
	jobs := jobExecutor(t, env)
	s := startServer(t, env, y, jobs)
	s.Token = pbToken
	hook := playbooktest.KubeDeploymentReplicasMismatch(ns, "web")
	res := s.Alerts(t, hook, http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res)
	}
	start := time.Now()
	m := s.Wait(t, res[0].Run, 8*time.Minute)
	t.Logf("set of %d pods through Jobs: %s in %s: %s", len(m.Set.Pods), m.Status, time.Since(start).Round(time.Millisecond), m.Verdict)
	checkSet(t, m, ns, 3, 0)
	if m.Executor != "job" || !strings.HasPrefix(m.Verdict, "3 of 3 pods: ") {
		t.Fatalf("executor %q verdict %q", m.Executor, m.Verdict)
	}
	noRunsLeft(t, env, jobsNS)

	b := startServer(t, env, y, jobs)
	b.Token = pbToken
	rb := b.Alerts(t, hook, http.StatusOK)
	mb := b.Wait(t, rb[0].Run, 2*time.Minute)
	if mb.Status != playbook.StatusDuplicate || len(mb.Set.Pods) != 0 || !strings.Contains(mb.Message, "another replica of the server runs this alert: the episode marker configmap "+jobsNS+"/kdiag-episode-") {
		t.Fatalf("second replica: %s %q %+v", mb.Status, mb.Message, mb.Set)
	}

	// A new episode of the alert given to two fresh replicas at once: one
	// set runs the 3 pods, the other is a duplicate.
	hook.Alerts[0].StartsAt = time.Now().UTC().Truncate(time.Second)
	c, d := startServer(t, env, y, jobs), startServer(t, env, y, jobs)
	c.Token, d.Token = pbToken, pbToken
	rc, rd := c.Alerts(t, hook, http.StatusOK), d.Alerts(t, hook, http.StatusOK)
	mc, md := c.Wait(t, rc[0].Run, 8*time.Minute), d.Wait(t, rd[0].Run, 8*time.Minute)
	if mc.Status == playbook.StatusDuplicate {
		mc, md = md, mc
	}
	if md.Status != playbook.StatusDuplicate || len(md.Set.Pods) != 0 {
		t.Fatalf("concurrent replicas: %s %q and %s %q", mc.Status, mc.Message, md.Status, md.Message)
	}
	checkSet(t, mc, ns, 3, 0)
	noRunsLeft(t, env, jobsNS)
}
