package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
)

// replicasManifests: a Deployment of 3 replicas of the seed's broken app
// (its ConfigMap has the flag key), none of which becomes Ready.
const replicasManifests = `apiVersion: v1
kind: ConfigMap
metadata: {name: myconfig}
data: {config.toml: "[default]", additional_file: ""}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: broken-container
          image: kdiag-broken-app:v1
          imagePullPolicy: Never
          readinessProbe: {httpGet: {path: /readyz, port: 3000}, periodSeconds: 2, failureThreshold: 1}
          volumeMounts: [{name: config, mountPath: /opt/config}]
      volumes: [{name: config, configMap: {name: myconfig}}]
`

// amGroup is a group of Alertmanager's /api/v2/alerts/groups.
type amGroup struct {
	Labels   map[string]string `json:"labels"`
	Receiver struct {
		Name string `json:"name"`
	} `json:"receiver"`
	Alerts []struct {
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// TestAlertPipelineFanout breaks the 3 replicas of a Deployment and lets
// the real pipeline handle them: KdiagPodNotReady fires for each pod and
// Alertmanager groups them into one notification holding the 3 pods,
// each of which kdiag serve diagnoses on its own; KdiagDeploymentNotReady,
// a workload-level rule naming no pod (the deployment label comes from
// the pods' names), fans out on the fan-out route: one set of 3 per-pod
// runs grouped under the ConfigMap key's verdict. Alertmanager's repeats
// start no second set.
func TestAlertPipelineFanout(t *testing.T) {
	env := harness.Cluster(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kdiag, app := build(t, root)
	env.ImportImage(t, "kdiag-broken-app:v1", app)
	ns := namespace(t, env)
	p := startPipeline(t, root, kdiag, ns, "30m") // no fix within the test
	m := filepath.Join(t.TempDir(), "replicas.yaml")
	os.WriteFile(m, []byte(replicasManifests), 0o644)
	t0 := time.Now()
	env.Kubectl(t, "apply", "-n", ns, "-f", m)

	grouped := waitFor(t, 2*time.Minute, "one Alertmanager group of KdiagPodNotReady holding the 3 pods", func() bool {
		var groups []amGroup
		p.get(t, p.am+"/api/v2/alerts/groups", false, &groups)
		for _, g := range groups {
			if g.Labels["alertname"] == "KdiagPodNotReady" && g.Labels["namespace"] == ns && g.Receiver.Name == "kdiag" && len(g.Alerts) == 3 {
				return true
			}
		}
		return false
	})
	var set *playbook.Meta
	setDone := waitFor(t, 5*time.Minute, "the fan-out set of the Deployment to end", func() bool {
		for _, r := range p.runs(t) {
			if r.Route == "deployment-not-ready" {
				set = p.meta(t, r.ID)
				return set.Done()
			}
		}
		return false
	})
	key := "ConfigMap " + ns + "/myconfig key additional_file"
	if set.Status != playbook.StatusOK || set.Set == nil || set.Set.Owner != "Deployment/web" || len(set.Set.Pods) != 3 ||
		len(set.Set.Groups) != 1 || !strings.Contains(set.Set.Groups[0].Verdict, key) || !strings.HasPrefix(set.Verdict, "3 of 3 pods: ") ||
		set.Alert.Labels["deployment"] != "web" {
		t.Fatalf("set: %s (%s) verdict %q set %+v", set.Status, set.Message, set.Verdict, set.Set)
	}
	pods := map[string]bool{}
	waitFor(t, 5*time.Minute, "a diagnosis of each of the 3 pods", func() bool {
		for _, r := range p.runs(t) {
			if r.Route == "pod-not-ready-diagnose" {
				if m := p.meta(t, r.ID); m.Done() && m.Status == playbook.StatusOK && strings.Contains(m.Verdict, key) {
					pods[r.Alert["pod"]] = true
				}
			}
		}
		return len(pods) == 3
	})
	time.Sleep(15 * time.Second) // longer than repeat_interval: the repeats start nothing
	n := 0
	for _, r := range p.runs(t) {
		if r.Route == "deployment-not-ready" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d fan-out sets, want 1: %+v", n, p.runs(t))
	}
	if d := p.metric(t, "kdiag_alerts_ignored_total", "reason", "deduplicated"); d < 1 {
		t.Fatal("no repeat was deduplicated")
	}
	if got := p.metric(t, "kdiag_fanout_pod_runs_total", "route", "deployment-not-ready", "status", "ok"); got != 3 {
		t.Fatalf("pod runs metric: %v", got)
	}
	t.Logf("timeline: Deployment applied; %s KdiagPodNotReady grouped (3 pods, one notification); %s set received; %s set ended (%s): %q",
		since(t0, grouped), since(t0, set.Received), since(t0, setDone), set.Ended.Sub(*set.Started).Round(time.Millisecond), set.Verdict)
}
