//go:build nodes

package nodes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/test/harness"
)

// jobToken is the bearer token of the test's playbook server.
const jobToken = "nodes-job-token"

// namespaceFor creates a fresh namespace, deleted after the test.
func namespaceFor(t *testing.T, env *harness.Env, prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	ns := prefix + "-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	return ns
}

// runnerNamespace creates the namespace of the run Jobs, with the
// ServiceAccount kdiag-runner bound to the ClusterRole of deploy/rbac.yaml
// (under a name of the test's own), as deploy/ binds it.
func runnerNamespace(t *testing.T, env *harness.Env) string {
	ns := namespaceFor(t, env, "agentsession-runs")
	env.Kubectl(t, "create", "serviceaccount", playbook.DefaultJobServiceAccount, "-n", ns)
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

// TestJobAcrossNodes: kdiag serve's Job executor runs the seed runbook in
// a Job pod on node 1 (node 2 is tainted; the Job does not tolerate it)
// for the broken pod on node 2, with no runtime endpoint configured, as
// the ServiceAccount of deploy/rbac.yaml's ClusterRole:
//   - as shipped, the role cannot read node 2's kubelet configuration
//     (nodes/proxy), the agent on node 2 finds no socket at the
//     well-known paths (node 2's is elsewhere), and the run fails with
//     find_pid saying so and naming the rule to add;
//   - with get on nodes/proxy added, the run's node built-ins go through
//     an agent pod on node 2, which asks node 2's runtime (from its
//     kubelet configuration); the verdict names the ConfigMap key and the
//     recording replays.
//
// Each time no Job, run pod or agent pod is left.
func TestJobAcrossNodes(t *testing.T) {
	env := harness.Cluster(t)
	kdiag, app := build(t)
	env.ImportImage(t, "kdiag-local:v1", kdiag) // the run's and the agent's image, on both nodes
	ns := seedOnNode2(t, env, app, "nodes-job")
	jobsNS := runnerNamespace(t, env)

	yaml := fmt.Sprintf(`auth: {token_file: token}
executor: job
job:
  namespace: %s
  image: kdiag-local:v1
  image_pull_policy: Never
  host_network: true
  env: {KUBERNETES_SERVICE_HOST: 127.0.0.1, KUBERNETES_SERVICE_PORT: "6443"}
  termination_grace: 10s
routes:
  - name: seed
    match: {alertname: KubePodNotReady}
    runbook: readiness-probe-failing
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
      trace: 2s
      ephemeral: "false"
      fix: "false"
      force: "true"
    mutations: never
`, jobsNS)
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		t.Fatal(err)
	}

	// run serves the seed alert with a fresh server and returns the stored
	// run and its transcript, once nothing of it is left in the cluster.
	run := func(t *testing.T) (*playbook.Meta, *transcript.Transcript, string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "token"), []byte(jobToken+"\n"), 0o600)
		cfg := playbooktest.Config(t, dir, yaml)
		j := job.New(cfg, cs)
		j.Poll = 200 * time.Millisecond
		s := playbooktest.Start(t, cfg, playbook.Options{Specs: builtins.All(builtins.Config{Kubeconfig: env.Kubeconfig}), Version: "nodes", Executor: j})
		s.Token, s.ReadToken = jobToken, jobToken
		res := s.Alerts(t, playbooktest.KubePodNotReady(ns, "my-broken-pod"), http.StatusOK)
		if len(res) != 1 || res[0].Outcome != playbook.OutcomeStarted {
			t.Fatalf("alert results %+v", res)
		}
		var runNode string
		deadline := time.Now().Add(2 * time.Minute)
		for runNode == "" && time.Now().Before(deadline) {
			out, _, _ := env.RunKubectl("get", "pods", "-n", jobsNS, "-l", job.RunLabel, "-o", "jsonpath={.items[*].spec.nodeName}")
			runNode = strings.TrimSpace(out)
			time.Sleep(200 * time.Millisecond)
		}
		start := time.Now()
		m := s.Wait(t, res[0].Run, 5*time.Minute)
		t.Logf("run %s on %s in %s: %s %s", m.Status, runNode, time.Since(start).Round(time.Millisecond), m.Message, m.Verdict)
		if runNode != env.NodeName {
			t.Errorf("the run's pod ran on %q, want node 1 (%s)", runNode, env.NodeName)
		}
		if m.Executor != "job" {
			t.Errorf("executor %q", m.Executor)
		}
		tp := s.Store().TranscriptPath(m.ID)
		tr, err := transcript.ReadFile(tp)
		if err != nil {
			t.Fatal(err)
		}
		if cleanups := tr.Footer.Cleanups; len(cleanups) != 1 || !strings.HasPrefix(cleanups[0].Name, "delete node agent pod "+ns+"/kdiag-agent-") || cleanups[0].Error != "" {
			t.Errorf("cleanups %+v: want the agent pod's deletion", cleanups)
		}
		deadline = time.Now().Add(60 * time.Second)
		for {
			jobs, _, _ := env.RunKubectl("get", "jobs,pods", "-n", jobsNS, "-l", job.RunLabel, "-o", "name")
			agents, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/managed-by=kdiag,kdiag.io/role=agent", "-o", "name")
			if strings.TrimSpace(jobs+agents) == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("left behind: %s %s", jobs, agents)
			}
			time.Sleep(500 * time.Millisecond)
		}
		return m, tr, tp
	}

	t.Run("as shipped", func(t *testing.T) {
		m, _, _ := run(t)
		for _, want := range []string{"find_pid: no CRI runtime socket found", "node " + node2 + "'s runtime endpoint was not learnt from its kubelet configuration: reading it needs get on nodes/proxy"} {
			if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, want) {
				t.Errorf("run: status %s, message %q; want failed with %q", m.Status, m.Message, want)
			}
		}
	})

	t.Run("nodes/proxy", func(t *testing.T) {
		env.Kubectl(t, "patch", "clusterrole", jobsNS, "--type=json", "-p", `[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["nodes/proxy"],"verbs":["get"]}}]`)
		m, tr, tp := run(t)
		if m.Status != playbook.StatusOK || !strings.Contains(m.Verdict, "key additional_file") {
			t.Fatalf("run: status %s (%s), verdict %q", m.Status, m.Message, m.Verdict)
		}
		var found struct {
			Endpoint     string
			Where        string
			EndpointFrom string `json:"endpoint_from"`
		}
		node := 0
		for _, e := range tr.Calls() {
			switch {
			case e.Builtin == "find_pid" && e.Error == nil:
				json.Unmarshal(e.Result, &found)
			case e.Builtin == "strace_sample" || e.Builtin == "read_file" || e.Builtin == "list_dir" || e.Builtin == "http_probe":
				if e.Error != nil {
					t.Errorf("%s through node 2's agent: %s", e.Builtin, e.Error.Message)
				}
				node++
			}
		}
		if !strings.HasPrefix(found.Where, "an agent pod on node "+node2) || found.Endpoint != node2Endpoint || found.EndpointFrom != "the kubelet configuration of node "+node2 {
			t.Errorf("find_pid in the Job: %+v; want node 2's agent asking node 2's runtime from its kubelet configuration", found)
		}
		if node == 0 {
			t.Errorf("no node built-in ran after find_pid")
		}
		if b, err := exec.Command(kdiag, "replay", "-q", "--kubeconfig", "/nonexistent", tp).CombinedOutput(); err != nil {
			t.Fatalf("replay: %v\n%s", err, b)
		}
	})
}
