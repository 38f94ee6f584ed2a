// Package e2e runs kdiag end to end on the project's local Kubernetes
// cluster (test/cluster): the seed incident diagnosed and fixed by the
// shipped runbook, its variant, cancellation and undo.
package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// TestSeedIncident reproduces the seed incident, lets the shipped runbook
// diagnose and fix it unattended, then undoes the fix from the transcript:
// the key comes back and the restarted pod is unready again.
func TestSeedIncident(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "seed")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")

	// The seed app checks the file in a background loop, not in the
	// request: that is correlational evidence, a suspect, and without
	// force=true nothing is changed.
	out, errOut, code := kdiag(t, env, "run", "readiness-probe-failing", "-n", ns, "-p", "pod=my-broken-pod", "-p", "ephemeral=false", "--yes", "--no-record")
	if code != 0 {
		t.Fatalf("kdiag run exit %d\n%s\n%s", code, out, errOut)
	}
	want := "suspect: ConfigMap " + ns + "/myconfig key additional_file"
	if !strings.Contains(out, "WARNING  "+want) || !strings.Contains(out, "suspect (not proven): ConfigMap "+ns+"/myconfig key additional_file, a flag the app checks in container broken-container; the failing request did not touch it") {
		t.Fatalf("no suspect finding and verdict %q in the report:\n%s", want, out)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "additional_file") {
		t.Fatalf("a suspect was removed without force: %s", data)
	}

	// With force=true the fix is an experiment that proves itself.
	tp := filepath.Join(t.TempDir(), "run.jsonl")
	out, errOut, code = kdiag(t, env, "run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace="+ns, "-p", "force=true", "--yes", "--record", tp)
	if code != 0 {
		t.Fatalf("kdiag run exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "key additional_file (suspect, correlational evidence) made /readyz of container broken-container fail; fixed and verified: pod "+ns+"/my-broken-pod is Ready 2/2") {
		t.Fatalf("verdict does not say fixed:\n%s", out)
	}
	if got := podReady(env, ns, "my-broken-pod"); got != "True" {
		t.Fatalf("pod Ready=%q after the fix", got)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); strings.Contains(data, "additional_file") {
		t.Fatalf("key still present: %s", data)
	}
	tr := readTranscript(t, tp)
	if tr.Footer.Status != transcript.StatusOK {
		t.Fatalf("footer %+v", tr.Footer)
	}
	// kdiag runs as root on a kernel with BTF: the request was traced with
	// eBPF (backend auto), the container scope by its processes (cgroup v1
	// here), and the accept of kdiag's probe was found.
	traced := 0
	for _, e := range tr.Events {
		if e.Type != transcript.TypeCall || e.Builtin != "strace_sample" || e.Error != nil {
			continue
		}
		var r struct {
			Backend string `json:"backend"`
			Request *struct {
				Found bool `json:"found"`
			} `json:"request"`
		}
		if err := json.Unmarshal(e.Result, &r); err != nil {
			t.Fatal(err)
		}
		if r.Backend != "ebpf" || r.Request == nil || !r.Request.Found {
			t.Errorf("strace_sample ran on %q, request %+v: want eBPF and the request found", r.Backend, r.Request)
		}
		traced++
	}
	if traced == 0 {
		t.Error("no strace_sample call in the transcript")
	}

	// The transcript replays with no cluster to the same report.
	rep, _, code := kdiag(t, env, "replay", "-q", "--kubeconfig", "/nonexistent", tp)
	if code != 0 || rep != out {
		t.Fatalf("replay exit %d, report differs:\n%s\n---\n%s", code, rep, out)
	}

	// Undo puts the key back; restarted, the pod is unready again.
	undo, undoErr, code := kdiag(t, env, "undo", "--yes", tp)
	if !strings.Contains(undo, "configmap "+ns+"/myconfig: reverted") {
		t.Fatalf("undo exit %d:\n%s\n%s", code, undo, undoErr)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "additional_file") {
		t.Fatalf("undo did not restore the key: %s", data)
	}
	env.Kubectl(t, "delete", "pod", "my-broken-pod", "-n", ns, "--wait=true", "--grace-period=1")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	time.Sleep(3 * time.Second) // several probe periods
	if got := podReady(env, ns, "my-broken-pod"); got != "False" {
		t.Fatalf("pod Ready=%q after undo and restart, want False", got)
	}
}

// TestVariantIncident: a differently named incident of the same kind —
// other pod, ConfigMap, key, port (named), probe path and mount path — is
// diagnosed by the same runbook. It runs with fix=False, without the
// ephemeral path and on the ptrace backend (the seed runs on eBPF), and
// changes nothing.
func TestVariantIncident(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "payments")
	applyIn(t, env, "examples/payments-variant/manifests.yaml", "payments", ns)
	waitRunningNotReady(t, env, ns, "payments-api-7f9c")

	out, errOut, code := kdiag(t, env, "run", "readiness-probe-failing", "-p", "pod=payments-api-7f9c", "-p", "namespace="+ns,
		"-p", "fix=false", "-p", "ephemeral=false", "-p", "trace_backend=ptrace", "--no-record")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	want := "suspect (not proven): ConfigMap " + ns + "/payments-settings key maintenance.flag"
	if !strings.Contains(out, want) {
		t.Fatalf("no finding %q:\n%s", want, out)
	}
	if !strings.Contains(out, "http://127.0.0.1:8081/healthz/ready answers 500") {
		t.Fatalf("the probe of the named port 8081 is not in the report:\n%s", out)
	}
	if data := env.Kubectl(t, "get", "configmap", "payments-settings", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "maintenance.flag") {
		t.Fatalf("fix=False changed the ConfigMap: %s", data)
	}
}

// TestDryRunChangesNothing runs the seed runbook under --dry-run=server:
// it diagnoses, plans its changes, and the cluster is unchanged.
func TestDryRunChangesNothing(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "dry")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	uid := env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "jsonpath={.metadata.uid}")
	out, errOut, code := kdiag(t, env, "run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace="+ns, "-p", "force=true", "--dry-run=server", "--no-record")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "key additional_file") || !strings.Contains(out, "planned (dry run: server)") {
		t.Fatalf("dry run did not diagnose and plan:\n%s", out)
	}
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "additional_file") {
		t.Fatalf("dry run changed the ConfigMap: %s", data)
	}
	if got := env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "jsonpath={.metadata.uid} {.spec.ephemeralContainers}"); strings.TrimSpace(got) != strings.TrimSpace(uid) {
		t.Fatalf("dry run changed the pod: %q (uid was %q)", got, uid)
	}
}

// statusOf returns the State and TracerPid lines of /proc/PID/status.
func statusOf(pid string) (state, tracer string) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "gone", ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok {
			state = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			tracer = strings.TrimSpace(v)
		}
	}
	return state, tracer
}
