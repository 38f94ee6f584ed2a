package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/test/harness"
)

// fleetManifests: a Deployment of 3 replicas of the seed's broken app
// (its ConfigMap has the flag key) and a bare pod with the same app label
// and a good ConfigMap, which becomes Ready.
const fleetManifests = `apiVersion: v1
kind: ConfigMap
metadata: {name: myconfig}
data: {config.toml: "[default]", additional_file: ""}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: goodconfig}
data: {config.toml: "[default]"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web, tier: deploy}}
  template:
    metadata: {labels: {app: web, tier: deploy}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: broken-container
          image: kdiag-broken-app:v1
          imagePullPolicy: Never
          readinessProbe: {httpGet: {path: /readyz, port: 3000}, periodSeconds: 2, failureThreshold: 1}
          volumeMounts: [{name: config, mountPath: /opt/config}]
      volumes: [{name: config, configMap: {name: myconfig}}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-ok, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: broken-container
      image: kdiag-broken-app:v1
      imagePullPolicy: Never
      readinessProbe: {httpGet: {path: /readyz, port: 3000}, periodSeconds: 2, failureThreshold: 1}
      volumeMounts: [{name: config, mountPath: /opt/config}]
  volumes: [{name: config, configMap: {name: goodconfig}}]
`

// deployPods waits for the Deployment's 3 pods to run, not Ready, and
// returns their names.
func deployPods(t *testing.T, env *harness.Env, ns string) []string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		names := strings.Fields(env.Kubectl(t, "get", "pods", "-n", ns, "-l", "tier=deploy", "-o", "jsonpath={.items[*].metadata.name}"))
		if len(names) == 3 {
			for _, n := range names {
				waitRunningNotReady(t, env, ns, n)
			}
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment pods: %v", names)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestFleetRun runs the seed runbook over every pod app=web (3 broken
// replicas and 1 healthy pod): one transcript per pod, the summary groups
// the 3 under the ConfigMap key's verdict and the healthy one apart;
// kdiag report and kdiag replay give the same groups from the directory;
// --all-replicas runs on the Deployment's 3 pods only; bad fleet requests
// are clear errors.
func TestFleetRun(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "fleet")
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(p, []byte(fleetManifests), 0o644)
	env.Kubectl(t, "apply", "-n", ns, "-f", p)
	pods := deployPods(t, env, ns)
	env.Kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/web-ok", "--timeout=90s")

	dir := filepath.Join(t.TempDir(), "fleet")
	args := []string{"run", "readiness-probe-failing", "-n", ns, "-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=2s"}
	out, errOut, code := kdiag(t, env, append(args, "--selector", "app=web", "--record", dir, "-o", "json")...)
	if code != 0 {
		t.Fatalf("fleet run: exit %d\n%s\n%s", code, out, errOut)
	}
	var sum fleet.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("fleet json: %v\n%s", err, out)
	}
	key := "ConfigMap " + ns + "/myconfig key additional_file"
	if len(sum.Pods) != 4 || len(sum.Groups) != 2 || len(sum.Groups[0].Pods) != 3 || !strings.Contains(sum.Groups[0].Verdict, key) ||
		len(sum.Groups[1].Pods) != 1 || sum.Groups[1].Pods[0].Pod != "web-ok" || strings.Contains(sum.Groups[1].Verdict, key) {
		t.Fatalf("fleet summary: %+v\n%s", sum, errOut)
	}
	for _, o := range sum.Pods {
		if o.Status != "ok" || o.Node == "" {
			t.Errorf("pod %s: %+v", o.Pod, o)
		}
		if _, err := os.Stat(o.Transcript); err != nil {
			t.Errorf("pod %s: transcript %v", o.Pod, err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(files) != 4 {
		t.Fatalf("transcripts: %v", files)
	}

	rep, errOut, code := kdiag(t, env, "report", dir, "-o", "json")
	var again fleet.Summary
	if code != 0 || json.Unmarshal([]byte(rep), &again) != nil || len(again.Groups) != 2 || again.Groups[0].Verdict != sum.Groups[0].Verdict ||
		again.Selector != "app=web" {
		t.Fatalf("report of the fleet directory: exit %d %+v\n%s\n%s", code, again, rep, errOut)
	}
	text, errOut, code := kdiag(t, env, "replay", dir)
	if code != 0 || !strings.Contains(text, "3 of 4 pods: ") || !strings.Contains(text, "1 of 4 pods: ") {
		t.Fatalf("replay of the fleet directory: exit %d\n%s\n%s", code, text, errOut)
	}

	out, errOut, code = kdiag(t, env, append(args, "-p", "pod="+pods[0], "--all-replicas", "--record", filepath.Join(t.TempDir(), "replicas"))...)
	if code != 0 || !strings.Contains(out, "3 of 3 pods: ") || !strings.Contains(errOut, "Deployment/web in "+ns) {
		t.Fatalf("--all-replicas: exit %d\n%s\n%s", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--selector", "app=nosuch"}, 1, "no pod matches app=nosuch in namespace " + ns},
		{[]string{"-p", "pod=web-ok", "--all-replicas"}, 1, "pod " + ns + "/web-ok has no controller"},
		{[]string{"--selector", "app=web", "--no-record"}, 2, "drop --no-record"},
		{[]string{"--all-replicas"}, 2, "give the pod"},
		{[]string{"-A"}, 2, "--all-namespaces goes with --selector"},
	} {
		_, errOut, code := kdiag(t, env, append(args, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, errOut)
		}
	}
}
