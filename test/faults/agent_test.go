//go:build faults

package faults

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
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
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	var fp []*transcript.Event
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "find_pid" {
			fp = append(fp, e)
		}
	}
	if len(fp) > 0 && fp[0].Error == nil {
		// kdiag opened its session to the agent before the freeze took
		// hold (the test sees the pod Running through the same API
		// server): see TestFaultAgentAPIServerFrozenMidSession.
		t.Logf("the session was open before the freeze: find_pid succeeded in %.0f ms", fp[0].DurationMS)
		checkStalledSession(t, r, ended)
		return
	}
	if ended > 95*time.Second {
		t.Errorf("the run ended %s after the freeze; want it to end while the API server is frozen", ended)
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

// TestFaultAgentAPIServerFrozenMidSession: the API server is frozen once
// kdiag's session with the agent runs (its process is seen on the node):
// at once, while kdiag awaits the agent's hello, and once find_pid's
// answer is in the transcript, with the trace under way. The session waits on a
// stream that cannot move; its watch of the API server ends it within
// seconds, the node call fails unavailable naming the API server, the
// verdict is degraded and the run ends while the API server is frozen.
func TestFaultAgentAPIServerFrozenMidSession(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	for _, tc := range []struct {
		name  string
		ready func(tp string) bool // when to freeze
	}{
		{"hello", func(string) bool { return exec.Command("pgrep", "-f", "kdiag agent session").Run() == nil }},
		{"call", func(tp string) bool {
			b, _ := os.ReadFile(tp)
			return bytes.Contains(b, []byte(`"builtin":"find_pid"`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := seedPod(t, env)
			tp := filepath.Join(t.TempDir(), "run.jsonl")
			wait := startKdiagAt(t, env, tp, nil, agentArgs(ns, 2*time.Minute)...)
			deadline := time.Now().Add(90 * time.Second)
			for !tc.ready(tp) {
				if time.Now().After(deadline) {
					t.Fatalf("the run never reached the point to freeze at: %q", agentPods(env, ns))
				}
				time.Sleep(10 * time.Millisecond)
			}
			frozeAt := time.Now()
			thaw := freeze(t, env, "kube-apiserver", 100*time.Second)
			r := wait()
			ended := time.Since(frozeAt)
			thaw()
			t.Logf("FIGURES agent mode, API server frozen mid-session (%s): the run ended %s after the freeze (exit %d after %s); cleanups %+v",
				tc.name, ended.Round(100*time.Millisecond), r.code, r.took.Round(100*time.Millisecond), cleanups(r))
			if r.tr == nil || r.code != 0 {
				t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
			}
			checkStalledSession(t, r, ended)
			env.RunKubectl("delete", "pods", "-n", ns, "-l", "kdiag.io/role=agent", "--wait=false")
		})
	}
}

// checkStalledSession checks a run whose agent session was open when the
// API server froze: the first node call that failed did so within 15 s,
// unavailable, naming the API server; the run ended within a minute of the
// freeze with a degraded verdict.
func checkStalledSession(t *testing.T, r run, ended time.Duration) {
	t.Helper()
	var failed []*transcript.Event
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Error != nil && strings.Contains(e.Error.Message, "node agent") {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 || failed[0].Error.Kind != "unavailable" || !strings.Contains(failed[0].Error.Message, "the API server at https://") ||
		failed[0].DurationMS > 15000 {
		t.Fatalf("node calls that failed %+v; want the first to fail within 15 s naming the API server", failed)
	}
	t.Logf("FIGURES %s failed after %.1f s: %s", failed[0].Builtin, failed[0].DurationMS/1000, failed[0].Error.Message)
	if ended > 60*time.Second {
		t.Errorf("the run ended %s after the freeze; want it soon after the stalled call failed", ended)
	}
	if v := verdictOf(r.tr); !strings.Contains(v, "not checked: ") {
		t.Errorf("verdict %q; want a degraded one", v)
	}
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

// TestFaultAgentEtcdFrozen: etcd is frozen during agent-mode runs of the
// seed runbook on node 1, while the API server still answers /readyz/ping
// but can read and write nothing: once when the agent pod runs, once as
// it is created. A node call that got no answer fails with kind
// unavailable naming the API server's storage, which the agent is reached
// through (before: the agent pod "did not start in time", blamed on the
// kubelet or the node); the next one says so within its 3s check; the
// verdict is degraded. If kdiag had opened the agent's session before the
// freeze, the node built-ins go on over it and the next API read fails
// naming the storage instead. Each run ends within its deadline while
// etcd is still frozen, with a complete transcript; the agent pod it could
// not delete (its deletion needs etcd) is named in the footer, or is gone
// once etcd resumes.
func TestFaultAgentEtcdFrozen(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	ns := seedPod(t, env)
	for _, c := range []struct {
		name  string
		ready func(pods string) bool // when to freeze
	}{
		{"agent pod running", func(pods string) bool { return strings.Contains(pods, " Running") }},
		{"agent pod created", func(pods string) bool { return pods != "" }},
	} {
		before := agentPods(env, ns)
		wait := startKdiag(t, env, nil, agentArgs(ns, 2*time.Minute)...)
		deadline := time.Now().Add(60 * time.Second)
		for {
			var mine []string
			for _, l := range strings.Split(agentPods(env, ns), "\n") {
				if l != "" && !strings.Contains(before, strings.Fields(l)[0]) {
					mine = append(mine, l)
				}
			}
			if c.ready(strings.Join(mine, "\n")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the agent pod never got there: %q", c.name, agentPods(env, ns))
			}
			time.Sleep(50 * time.Millisecond)
		}
		frozeAt := time.Now()
		thaw := freeze(t, env, "etcd", 100*time.Second)
		r := wait()
		ended := time.Since(frozeAt)
		thaw()
		t.Logf("FIGURES agent mode, etcd frozen (%s): the run ended %s after the freeze (exit %d after %s); cleanups %+v",
			c.name, ended.Round(100*time.Millisecond), r.code, r.took.Round(100*time.Millisecond), cleanups(r))
		if ended > 95*time.Second {
			t.Errorf("%s: the run ended %s after the freeze; want it to end while etcd is frozen", c.name, ended)
		}
		if r.tr == nil || r.tr.Footer == nil {
			t.Fatalf("%s: exit %d, transcript %v; want a complete one", c.name, r.code, r.tr != nil)
		}
		storage := 0
		for _, e := range r.tr.Events {
			if e.Type != transcript.TypeCall || e.Error == nil {
				continue
			}
			t.Logf("%s: %s after %.0f ms: %s: %s", c.name, e.Builtin, e.DurationMS, e.Error.Kind, e.Error.Message)
			if e.Error.Kind == "unavailable" && strings.Contains(e.Error.Message, "answers, but its storage") && strings.Contains(e.Error.Message, "etcd") {
				storage++
			} else {
				t.Errorf("%s: %s failed with %s: %s; want unavailable naming the API server's storage", c.name, e.Builtin, e.Error.Kind, e.Error.Message)
			}
		}
		if storage == 0 {
			t.Errorf("%s: no call failed naming the API server's storage", c.name)
		}
		if v := verdictOf(r.tr); r.code == 0 && !strings.Contains(v, "not checked: ") {
			t.Errorf("%s: verdict %q; want a degraded one, or the run failed naming the storage", c.name, v)
		} else if r.code != 0 && !strings.Contains(r.tr.Footer.Message, "answers, but its storage does not") {
			t.Errorf("%s: exit %d, footer %q; want the run's error to name the storage", c.name, r.code, r.tr.Footer.Message)
		}
		if c.name == "agent pod created" {
			fp := callErrors(r.tr)["find_pid"]
			if fp == nil || !strings.Contains(fp.Message, "node agent on node "+env.NodeName+" is reached through it") {
				t.Errorf("find_pid's error %+v; want it to name the storage the agent is reached through", fp)
			}
		}
		// The agent pod is deleted, or the footer says it is left behind.
		time.Sleep(3 * time.Second)
		left := agentPods(env, ns)
		named := ""
		for _, cl := range cleanups(r) {
			named += cl.Error
		}
		for _, l := range strings.Split(left, "\n") {
			if l != "" && !strings.Contains(before, strings.Fields(l)[0]) && !strings.Contains(named, strings.Fields(l)[0]+" is left behind") {
				t.Errorf("%s: agent pod %s is left and the footer does not say so (cleanups %+v)", c.name, l, cleanups(r))
			}
		}
		t.Logf("FIGURES %s: agent pods 3s after etcd resumed: %q", c.name, left)
		// The API server reads again before the next case.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
			if _, _, err := env.RunKubectl("get", "pod", "my-broken-pod", "-n", ns); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the API server did not read again after etcd resumed")
			}
		}
	}
}

// workloadsFrozen are the pods TestFaultAgentRuntimeFrozenWorkloads runs
// oomkilled, liveness-restarts, service-endpoints and evicted against, on
// node 1. Each misbehaves once and then holds still, so that all are in
// the state their runbook looks for when containerd is frozen: resizer
// is OOMKilled once (48Mi limit), then runs; inventory's liveness probe
// checks /livez, which its first instance does not serve, so the kubelet
// kills it after 50 s and the next instance (which does) is fresh for the
// runbook to repeat the probe; cart's Service targets port 80, nothing
// listens there; collector fills its writable layer and is evicted once,
// its replacement only sleeps. The first instances leave a marker on the
// node (MARKER, a hostPath) for the next ones.
const workloadsFrozen = `
apiVersion: v1
kind: Pod
metadata:
  name: resizer
spec:
  terminationGracePeriodSeconds: 1
  volumes:
    - name: marker
      hostPath:
        path: MARKER
        type: DirectoryOrCreate
  containers:
    - name: resizer
      image: busybox-local:v1
      imagePullPolicy: Never
      volumeMounts:
        - name: marker
          mountPath: /marker
      command:
        - sh
        - -c
        - |
          if [ -e /marker/resizer ]; then echo "resizer: cache off"; exec sleep 3600; fi
          touch /marker/resizer; echo "resizer: caching resized images in memory"; cache=""
          while true; do cache="$cache$(head -c 1048576 /dev/zero | tr '\0' x)"; sleep 0.5; done
      resources:
        limits:
          memory: 48Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: inventory
spec:
  terminationGracePeriodSeconds: 1
  volumes:
    - name: marker
      hostPath:
        path: MARKER
        type: DirectoryOrCreate
  containers:
    - name: inventory
      image: busybox-local:v1
      imagePullPolicy: Never
      volumeMounts:
        - name: marker
          mountPath: /marker
      command:
        - sh
        - -c
        - |
          mkdir -p /www; echo ok > /www/healthz
          if [ -e /marker/inventory ]; then echo ok > /www/livez; fi
          touch /marker/inventory; exec httpd -f -p 3000 -h /www
      ports:
        - name: http
          containerPort: 3000
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        initialDelaySeconds: 50
        periodSeconds: 2
        failureThreshold: 3
---
apiVersion: v1
kind: Service
metadata:
  name: cart
spec:
  selector:
    app: cart
  ports:
    - port: 80
      targetPort: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: cart
  labels:
    app: cart
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: cart
      image: busybox-local:v1
      imagePullPolicy: Never
      command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: collector
spec:
  replicas: 1
  selector:
    matchLabels:
      app: collector
  template:
    metadata:
      labels:
        app: collector
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
        - name: marker
          hostPath:
            path: MARKER
            type: DirectoryOrCreate
      containers:
        - name: collector
          image: busybox-local:v1
          imagePullPolicy: Never
          volumeMounts:
            - name: marker
              mountPath: /marker
          command:
            - sh
            - -c
            - |
              if [ -e /marker/collector ]; then echo "collector: spool drained"; exec sleep 3600; fi
              touch /marker/collector; mkdir -p /tmp/spool; i=0
              while true; do i=$((i+1)); head -c 1048576 /dev/urandom > /tmp/spool/batch-$i; sleep 0.5; done
          resources:
            limits:
              ephemeral-storage: 16Mi
`

// frozenTargets reads the pods of ns and returns, once each is in the
// state its runbook needs, the resizer's pod (running again after an OOM
// kill), the collector pod that was evicted (with a replacement running)
// and whether inventory runs again after a liveness kill, started at most
// 10 s ago; "" while not.
func frozenTargets(env *harness.Env, ns string) (resizer, evicted string, ready bool) {
	out, _, err := env.RunKubectl("get", "pods", "-n", ns, "-o", "json")
	if err != nil {
		return "", "", false
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string
				Labels map[string]string
			}
			Status struct {
				Phase, Reason     string
				ContainerStatuses []struct {
					Name         string
					RestartCount int
					State        struct {
						Running *struct{ StartedAt time.Time }
					}
					LastState struct {
						Terminated *struct{ Reason string }
					}
				}
			}
		}
	}
	if json.Unmarshal([]byte(out), &list) != nil {
		return "", "", false
	}
	var replaced, inventory, cart bool
	for _, p := range list.Items {
		st := p.Status
		switch app := p.Metadata.Labels["app"]; {
		case app == "collector" && st.Phase == "Failed" && st.Reason == "Evicted":
			evicted = p.Metadata.Name
		case app == "collector" && st.Phase == "Running":
			replaced = true
		case app == "cart":
			cart = st.Phase == "Running"
		}
		for _, c := range st.ContainerStatuses {
			switch {
			case c.Name == "resizer" && c.State.Running != nil && c.LastState.Terminated != nil && c.LastState.Terminated.Reason == "OOMKilled":
				resizer = p.Metadata.Name
			case c.Name == "inventory" && c.RestartCount > 0 && c.State.Running != nil && time.Since(c.State.Running.StartedAt) < 10*time.Second:
				inventory = true
			}
		}
	}
	if !replaced {
		evicted = ""
	}
	return resizer, evicted, resizer != "" && evicted != "" && inventory && cart
}

// TestFaultAgentRuntimeFrozenWorkloads: containerd of node 1 is frozen
// while oomkilled, liveness-restarts, service-endpoints and evicted run in
// agent mode against pods of node 1 in the state each looks for: the
// agent pods cannot start. Each run ends with its verdict and says what it
// could not check (the view from the node: the container runtime; the
// killed instance's log); the transcripts are the library's
// testdata/RUNBOOK/node-unreachable recordings (KDIAG_E2E_RECORDINGS).
// Once containerd resumes no agent pod is left.
func TestFaultAgentRuntimeFrozenWorkloads(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	ns := seedPod(t, env)
	marker := filepath.Join(os.TempDir(), "kdiag-faults-"+ns)
	t.Cleanup(func() { os.RemoveAll(marker) })
	m := filepath.Join(t.TempDir(), "workloads.yaml")
	os.WriteFile(m, []byte(strings.ReplaceAll(workloadsFrozen, "MARKER", marker)), 0o644)
	env.Kubectl(t, "apply", "-n", ns, "-f", m)
	var resizer, evicted string
	deadline := time.Now().Add(120 * time.Second)
	for ok := false; !ok; {
		if time.Now().After(deadline) {
			out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-o", "wide")
			t.Fatalf("the pods never reached their states (resizer %q, evicted %q):\n%s", resizer, evicted, out)
		}
		time.Sleep(500 * time.Millisecond)
		resizer, evicted, ok = frozenTargets(env, ns)
	}
	thaw := freeze(t, env, "containerd", 150*time.Second)
	args := map[string][]string{
		// No --request-timeout: the recordings replay with the default
		// deadlines. liveness-restarts' log read waits out its 30s, and
		// inventory's next instance is still fresh (53s) when the probe
		// is repeated.
		"oomkilled":         {"-p", "pod=" + resizer, "-p", "wait=5s"},
		"liveness-restarts": {"-p", "pod=inventory", "-p", "wait=5s"},
		"service-endpoints": {"-p", "service=cart"},
		"evicted":           {"-p", "pod=" + evicted, "-p", "sample=2s"},
	}
	waits := map[string]func() run{}
	for rb, a := range args {
		waits[rb] = startKdiag(t, env, nil, append(append([]string{"run", rb, "-p", "namespace=" + ns}, a...),
			"--node-mode=agent", "--agent-image", agentImage, "--timeout", "2m")...)
	}
	done := map[string]run{}
	for rb, wait := range waits {
		done[rb] = wait()
	}
	thaw()
	for rb, o := range done {
		if o.tr == nil || o.code != 0 {
			t.Errorf("%s: exit %d, transcript %v", rb, o.code, o.tr != nil)
			continue
		}
		if dir := os.Getenv("KDIAG_E2E_RECORDINGS"); dir != "" {
			os.MkdirAll(filepath.Join(dir, rb), 0o755)
		}
		keep(t, o, rb+"/node-unreachable")
		said := verdictOf(o.tr)
		for _, e := range o.tr.Events {
			if e.Type == transcript.TypeFinding {
				said += "\n" + e.Summary
			}
		}
		t.Logf("FIGURES %s with containerd frozen: %s; %s", rb, o.took.Round(100*time.Millisecond), said)
		if !strings.Contains(said, "not checked: ") || !strings.Contains(said, "the container runtime on node "+env.NodeName) {
			t.Errorf("%s: verdict and findings %q; want what could not be checked, naming the runtime", rb, said)
		}
	}
	gone := waitNoAgent(t, env, ns, 90*time.Second)
	t.Logf("FIGURES no agent pod %s after the thaw", gone.Round(100*time.Millisecond))
}
