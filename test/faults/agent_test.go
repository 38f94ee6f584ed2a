//go:build faults

package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// agentImage is the image of the agent pods (and serve's Jobs): this
// build of kdiag.
const agentImage = "kdiag-local:faults"

// agentArgs runs the seed runbook in agent mode on node 1.
func agentArgs(ns string, timeout time.Duration) []string {
	return []string{"run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace=" + ns,
		"-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=5s",
		"--node-mode=agent", "--agent-image", agentImage, "--timeout", timeout.String()}
}

// agentPods lists the agent pods in ns (name and phase).
func agentPods(env *harness.Env, ns string) string {
	out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "kdiag.io/role=agent", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}`)
	return strings.TrimSpace(out)
}

// waitNoAgent waits until ns has no agent pod.
func waitNoAgent(t *testing.T, env *harness.Env, ns string, limit time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		left := agentPods(env, ns)
		if left == "" {
			return time.Since(t0)
		}
		if time.Since(t0) > limit {
			t.Fatalf("agent pods left in %s %s after the fault cleared: %s", ns, limit, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func cleanups(r run) []transcript.Cleanup {
	if r.tr == nil || r.tr.Footer == nil {
		return nil
	}
	return r.tr.Footer.Cleanups
}

// TestFaultAgentAPIServerFrozen: the API server is frozen once the agent
// pod of an agent-mode run on node 1 runs (the agent's session is an exec
// stream through the API server). The run ends while it is still frozen,
// within its deadline, with find_pid's error naming the API server, the
// next node call failing fast, a degraded verdict and a complete
// transcript; the agent pod's deletion cannot happen and the footer's
// cleanups say it is left behind and what removes it. Once the API server
// answers, the next agent-mode run in the namespace deletes the leftover
// (its heartbeat is stale) and its own agent: no agent pod is left.
func TestFaultAgentAPIServerFrozen(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	ns := seedPod(t, env)
	wait := startKdiag(t, env, nil, agentArgs(ns, 2*time.Minute)...)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(agentPods(env, ns), " Running") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent pod never ran: %q", agentPods(env, ns))
		}
		time.Sleep(100 * time.Millisecond)
	}
	frozeAt := time.Now()
	thaw := freeze(t, env, "kube-apiserver", 100*time.Second)
	r := wait()
	ended := time.Since(frozeAt)
	thaw()
	left := agentPods(env, ns)
	t.Logf("FIGURES agent mode, API server frozen: the run ended %s after the freeze (exit %d after %s); cleanups %+v; left: %q",
		ended.Round(100*time.Millisecond), r.code, r.took.Round(100*time.Millisecond), cleanups(r), left)
	if ended > 95*time.Second {
		t.Errorf("the run ended %s after the freeze; want it to end while the API server is frozen", ended)
	}
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	var fp []*transcript.Event
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "find_pid" {
			fp = append(fp, e)
		}
	}
	if len(fp) != 2 || fp[0].Error == nil || fp[0].Error.Kind != "unavailable" || !strings.Contains(fp[0].Error.Message, "the API server at https://") ||
		!strings.Contains(fp[0].Error.Message, "node agent on node "+env.NodeName+" is reached through it") {
		t.Fatalf("find_pid calls %+v; want the first to fail naming the API server", fp)
	}
	if e := fp[1].Error; e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "still not answering") || fp[1].DurationMS > 5000 {
		t.Errorf("the second find_pid: %+v after %.0f ms; want a fast unavailable error", e, fp[1].DurationMS)
	}
	if v := verdictOf(r.tr); !strings.Contains(v, "the node could not be looked at") || !strings.Contains(v, "not checked: ") {
		t.Errorf("verdict %q; want a degraded one", v)
	}
	if c := cleanups(r); len(c) != 1 || !strings.Contains(c[0].Error, "is left behind: kubectl delete pod -n "+ns) {
		t.Errorf("cleanups %+v; want the agent pod's deletion failed and the leftover named", c)
	}
	if left == "" {
		t.Errorf("no agent pod left after the API server resumed; the footer says one was")
	}
	// The next run deletes an agent pod whose heartbeat is over 60 s old.
	out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "kdiag.io/role=agent", "-o", `jsonpath={.items[0].metadata.annotations.kdiag\.io/heartbeat}`)
	if beat, err := time.Parse(time.RFC3339, strings.TrimSpace(out)); err == nil {
		time.Sleep(time.Until(beat.Add(62 * time.Second)))
	}
	after := kdiag(t, env, nil, agentArgs(ns, time.Minute)...)
	if after.code != 0 || after.tr == nil || !strings.Contains(verdictOf(after.tr), "additional_file") {
		t.Errorf("after the API server resumed: exit %d, verdict %q", after.code, verdictOf(after.tr))
	}
	gone := waitNoAgent(t, env, ns, 30*time.Second)
	t.Logf("FIGURES the next run collected the leftover; no agent pod %s after it", gone.Round(100*time.Millisecond))
}

// TestFaultAgentRuntimeFrozen: containerd of node 1 is frozen before an
// agent-mode run on node 1, so the agent pod cannot start. The run ends
// well within its deadline with a degraded verdict: logs name the
// kubelet, find_pid names the container runtime (the kubelet still renews
// its lease), the second find_pid fails fast; the transcript is complete;
// the agent pod's deletion is recorded, and once containerd resumes no
// agent pod is left. port-not-listening, config-file-missing,
// syscall-storm and dns-from-pod, run in the same freeze on pods of the
// same node, end with degraded verdicts naming the runtime too (their
// transcripts are the library's testdata/*/node-unreachable recordings).
func TestFaultAgentRuntimeFrozen(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	ns := seedPod(t, env)
	// port-not-listening on the same node, in the same freeze: it too
	// says what it could not check (recorded for the library's tests with
	// KDIAG_E2E_RECORDINGS).
	// So do port-not-listening and config-file-missing on the same node,
	// in the same freeze (recorded for the library's tests with
	// KDIAG_E2E_RECORDINGS: testdata/RUNBOOK/node-unreachable).
	_, app := binaries(t)
	env.ImportImage(t, "kdiag-config-app:v1", filepath.Join(filepath.Dir(app), "config-app"))
	root, _ := harness.RepoRoot()
	for _, m := range []string{"examples/port-not-listening/manifests.yaml", "examples/config-file-missing/manifests.yaml",
		"examples/syscall-storm/manifests.yaml", "examples/dns-from-pod/manifests.yaml"} {
		env.Kubectl(t, "apply", "-n", ns, "-f", filepath.Join(root, m))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "pod", "greeter", "billing", "migrator", "web-client", "-n", ns, "-o", "jsonpath={.items[*].status.phase}")
		if out == "Running Running Running Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("greeter, billing, migrator and web-client never ran: %q", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	thaw := freeze(t, env, "containerd", 120*time.Second)
	others := map[string]func() run{}
	for rb, pod := range map[string]string{"port-not-listening": "greeter", "config-file-missing": "billing", "syscall-storm": "migrator", "dns-from-pod": "web-client"} {
		others[rb] = startKdiag(t, env, nil, "run", rb, "-p", "pod="+pod, "-p", "namespace="+ns,
			"--node-mode=agent", "--agent-image", agentImage, "--timeout", "2m")
	}
	r := kdiag(t, env, nil, append(agentArgs(ns, 2*time.Minute), "--request-timeout", "10s")...)
	done := map[string]run{}
	for rb, wait := range others {
		done[rb] = wait()
	}
	thaw()
	for rb, o := range done {
		if dir := os.Getenv("KDIAG_E2E_RECORDINGS"); dir != "" {
			os.MkdirAll(filepath.Join(dir, rb), 0o755)
		}
		keep(t, o, rb+"/node-unreachable")
		v := ""
		if o.tr != nil {
			v = verdictOf(o.tr)
		}
		if o.code != 0 || !strings.Contains(v, "(not checked: ") || !strings.Contains(v, "the view from the node (unavailable: the container runtime on node "+env.NodeName) {
			t.Errorf("%s: exit %d, verdict %q; want a degraded verdict naming the runtime", rb, o.code, v)
		}
	}
	gone := waitNoAgent(t, env, ns, 90*time.Second)
	t.Logf("FIGURES agent mode, containerd frozen: exit %d after %s; cleanups %+v; no agent pod %s after the thaw",
		r.code, r.took.Round(100*time.Millisecond), cleanups(r), gone.Round(100*time.Millisecond))
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	if r.took > 100*time.Second {
		t.Errorf("the run took %s; want logs' 10s, find_pid's 30s, a fast second find_pid and the cleanup's 30s at most", r.took)
	}
	if e := callErrors(r.tr)["logs"]; e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "the kubelet on node "+env.NodeName) {
		t.Errorf("logs' error %+v; want unavailable naming the kubelet", e)
	}
	var fp []*transcript.Event
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "find_pid" {
			fp = append(fp, e)
		}
	}
	if len(fp) != 2 || fp[0].Error == nil || !strings.Contains(fp[0].Error.Message, "the container runtime on node "+env.NodeName+" ") {
		t.Fatalf("find_pid calls %+v; want the first to name the runtime", fp)
	}
	if e := fp[1].Error; e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "node agent still not started") || fp[1].DurationMS > 8000 {
		t.Errorf("the second find_pid: %+v after %.0f ms; want a fast unavailable error", e, fp[1].DurationMS)
	}
	if v := verdictOf(r.tr); !strings.Contains(v, "the node could not be looked at") || !strings.Contains(v, "not checked: ") {
		t.Errorf("verdict %q; want a degraded one", v)
	}
	if c := cleanups(r); len(c) != 1 || !strings.HasPrefix(c[0].Name, "delete node agent pod "+ns+"/") {
		t.Errorf("cleanups %+v; want the agent pod's deletion", c)
	}
}
