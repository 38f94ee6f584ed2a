//go:build faults

package faults

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// keep copies a run's transcript to $KDIAG_E2E_RECORDINGS/NAME.jsonl,
// for the library's recordings (runbooks/testdata).
func keep(t *testing.T, r run, name string) {
	dir := os.Getenv("KDIAG_E2E_RECORDINGS")
	if dir == "" || r.tr == nil {
		return
	}
	b, err := os.ReadFile(r.tr.Path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".jsonl"), b, 0o644)
}

// TestNodeUnhealthyKubeletStopped: with the kubelet frozen past its
// lease's duration, node-unhealthy names the lease's renewTime and the
// kubelet, and says what to check on the node.
func TestNodeUnhealthyKubeletStopped(t *testing.T) {
	env := harness.Cluster(t)
	freeze(t, env, "kubelet", 150*time.Second)
	deadline := time.Now().Add(100 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "lease", env.NodeName, "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime} {.spec.leaseDurationSeconds}")
		f := strings.Fields(out)
		if len(f) == 2 {
			ts, err := time.Parse(time.RFC3339Nano, f[0])
			if err == nil && time.Since(ts) > 45*time.Second {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was still renewed with the kubelet frozen: %s", out)
		}
		time.Sleep(2 * time.Second)
	}
	r := kdiag(t, env, nil, "run", "node-unhealthy", "-p", "node="+env.NodeName)
	if r.code != 0 || r.tr == nil {
		t.Fatalf("exit %d", r.code)
	}
	keep(t, r, "kubelet-stopped")
	if !critical(r, "node/"+env.NodeName+" lease.spec.renewTime:") {
		t.Errorf("no critical finding on the lease's renewTime")
	}
	v := verdictOf(r.tr)
	if !strings.Contains(v, "the kubelet on "+env.NodeName+" stopped renewing its lease") || !strings.Contains(v, "systemctl status kubelet") {
		t.Errorf("verdict %q; want the kubelet named and what to check", v)
	}
}

// fakeNode registers a Node no kubelet serves (unschedulable and tainted,
// so nothing lands on it), with the given conditions, for states a real
// node cannot be put in on demand without harming the shared cluster.
func fakeNode(t *testing.T, env *harness.Env, name string, conds []map[string]string) {
	t.Helper()
	binaries(t) // before the node: its heartbeat is good for the node monitor's grace period (50s) only
	node := map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"unschedulable": true, "taints": []map[string]string{{"key": "kdiag.dev/fake", "effect": "NoExecute"}}}}
	b, _ := json.Marshal(node)
	p := filepath.Join(t.TempDir(), "node.json")
	os.WriteFile(p, b, 0o644)
	env.Kubectl(t, "apply", "-f", p)
	t.Cleanup(func() { env.RunKubectl("delete", "node", name, "--wait=false") })
	now := time.Now().UTC().Format(time.RFC3339)
	var cs []map[string]string
	for _, c := range conds {
		c["lastHeartbeatTime"], c["lastTransitionTime"] = now, now
		cs = append(cs, c)
	}
	st, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": cs}})
	env.Kubectl(t, "patch", "node", name, "--subresource=status", "--type=merge", "-p", string(st))
	lease := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": map[string]any{"name": name, "namespace": "kube-node-lease"},
		"spec": map[string]any{"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")}}
	b, _ = json.Marshal(lease)
	os.WriteFile(p, b, 0o644)
	env.Kubectl(t, "apply", "-f", p)
	t.Cleanup(func() { env.RunKubectl("delete", "lease", name, "-n", "kube-node-lease", "--wait=false") })
}

// TestNodeUnhealthyDiskPressure: a node under disk pressure is named by its
// DiskPressure condition, with what the kubelet does about it.
func TestNodeUnhealthyDiskPressure(t *testing.T) {
	env := harness.Cluster(t)
	fakeNode(t, env, "kdiag-fake-disk", []map[string]string{
		{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"},
		{"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure"},
		{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
	})
	r := kdiag(t, env, nil, "run", "node-unhealthy", "-p", "node=kdiag-fake-disk")
	if r.code != 0 || r.tr == nil {
		t.Fatalf("exit %d", r.code)
	}
	keep(t, r, "disk-pressure")
	if !critical(r, "node/kdiag-fake-disk status.conditions[DiskPressure].status: True") {
		t.Errorf("no critical finding on DiskPressure")
	}
	if v := verdictOf(r.tr); !strings.Contains(v, "DiskPressure on kdiag-fake-disk") || strings.Contains(v, "MemoryPressure") {
		t.Errorf("verdict %q", v)
	}
}

// TestNodeUnhealthyRuntimeStuck: a node whose kubelet reports PLEG not
// healthy is blamed on the container runtime, not the kubelet.
func TestNodeUnhealthyRuntimeStuck(t *testing.T) {
	env := harness.Cluster(t)
	fakeNode(t, env, "kdiag-fake-pleg", []map[string]string{
		{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy: pleg was last seen active 3m12.4s ago; threshold is 3m0s"},
	})
	r := kdiag(t, env, nil, "run", "node-unhealthy", "-p", "node=kdiag-fake-pleg")
	if r.code != 0 || r.tr == nil {
		t.Fatalf("exit %d", r.code)
	}
	keep(t, r, "pleg-not-healthy")
	if !critical(r, "node/kdiag-fake-pleg status.conditions[Ready].status: False") {
		t.Errorf("no critical finding on the Ready condition")
	}
	if v := verdictOf(r.tr); !strings.Contains(v, "(PLEG) is stuck") || !strings.Contains(v, "crictl info") {
		t.Errorf("verdict %q; want the runtime blamed", v)
	}
}

// critical reports whether the run recorded a critical finding starting
// with prefix.
func critical(r run, prefix string) bool {
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeFinding && e.Severity == "critical" && strings.HasPrefix(e.Summary, prefix) {
			return true
		}
	}
	return false
}
