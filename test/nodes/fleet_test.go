//go:build nodes

package nodes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/test/harness"
)

// fleetNodesManifests: 3 healthy replicas of the seed's app spread over
// both nodes, and one broken pod with the same label on node 2 (its
// ConfigMap has the flag key).
const fleetNodesManifests = `apiVersion: v1
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
      tolerations: [{key: kdiag.io/node2, operator: Exists, effect: NoSchedule}]
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {tier: deploy}}}
      containers:
        - name: app
          image: kdiag-broken-app:v1
          imagePullPolicy: Never
          readinessProbe: {httpGet: {path: /readyz, port: 3000}, periodSeconds: 2, failureThreshold: 1}
          volumeMounts: [{name: config, mountPath: /opt/config}]
      volumes: [{name: config, configMap: {name: goodconfig}}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-broken, labels: {app: web}}
spec:
  nodeName: kdiag-node2
  tolerations: [{key: kdiag.io/node2, operator: Exists, effect: NoSchedule}]
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: kdiag-broken-app:v1
      imagePullPolicy: Never
      readinessProbe: {httpGet: {path: /readyz, port: 3000}, periodSeconds: 2, failureThreshold: 1}
      volumeMounts: [{name: config, mountPath: /opt/config}]
  volumes: [{name: config, configMap: {name: myconfig}}]
`

// TestFleetAcrossNodes runs the seed runbook over 4 pods app=web on both
// nodes (3 healthy replicas, 1 broken pod on node 2) in agent mode: one
// run per node at a time, node built-ins in each node's agent pod, the
// summary groups the 3 healthy replicas apart from the broken pod, whose
// verdict names the key; no agent pod is left.
func TestFleetAcrossNodes(t *testing.T) {
	env := harness.Cluster(t)
	kdiagBin, app := build(t)
	env.ImportImage(t, "kdiag-broken-app:v1", app)
	env.ImportImage(t, "kdiag-local:nodes", kdiagBin)
	b := make([]byte, 3)
	rand.Read(b)
	ns := "nodes-fleet-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(p, []byte(fleetNodesManifests), 0o644)
	env.Kubectl(t, "apply", "-n", ns, "-f", p)
	env.Kubectl(t, "rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	deadline := time.Now().Add(120 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "pod", "web-broken", "-n", ns, "-o", `jsonpath={.status.phase} {.status.containerStatuses[*].started}`)
		if strings.TrimSpace(out) == "Running true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web-broken never ran: %q", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	nodes := env.Kubectl(t, "get", "pods", "-n", ns, "-l", "tier=deploy", "-o", "jsonpath={.items[*].spec.nodeName}")
	if !slices.Contains(strings.Fields(nodes), node2) || !slices.Contains(strings.Fields(nodes), "kdiag-node") {
		t.Fatalf("replicas not spread over both nodes: %q", nodes)
	}

	dir := filepath.Join(t.TempDir(), "fleet")
	cmd := exec.Command(kdiagBin, "run", "readiness-probe-failing", "-n", ns, "-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=3s",
		"--selector", "app=web", "--node-mode=agent", "--agent-image", "kdiag-local:nodes", "--record", dir, "-o", "json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fleet run: %v\n%s\n%s", err, out, stderr.String())
	}
	var sum fleet.Summary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("fleet json: %v\n%s", err, out)
	}
	if len(sum.Pods) != 4 || len(sum.Groups) != 2 || len(sum.Groups[0].Pods) != 3 || len(sum.Groups[1].Pods) != 1 ||
		sum.Groups[1].Pods[0].Pod != "web-broken" || sum.Groups[1].Pods[0].Node != node2 ||
		!strings.Contains(sum.Groups[1].Verdict, "ConfigMap "+ns+"/myconfig key additional_file") {
		t.Fatalf("fleet summary: %s\n%s", out, stderr.String())
	}
	if left := env.Kubectl(t, "get", "pods", "-n", ns, "-l", "kdiag.io/role=agent", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Fatalf("agent pods left: %s", left)
	}
	// Every run's node built-ins ran in the agent pod of its pod's node.
	for _, o := range sum.Pods {
		b, err := os.ReadFile(o.Transcript)
		if err != nil {
			t.Fatal(err)
		}
		if o.Pod == "web-broken" && !strings.Contains(string(b), "an agent pod on node "+node2) {
			t.Errorf("%s: find_pid did not run in node 2's agent", o.Pod)
		}
	}
}
