//go:build faults

// Package faults injects faults into the real local cluster — the API
// server, the kubelet and containerd are frozen with SIGSTOP — while kdiag
// runs, and checks that each run ends within its deadline with an error
// that names the component that did not answer, or goes on with what
// still works and says what it could not check. The tests stop shared
// cluster components, so they run alone, after every other test
// (`make test-faults`, part of `make test`).
package faults

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

var (
	frozenMu sync.Mutex
	frozen   = map[int]bool{}
)

// TestMain thaws whatever a test froze, and starts again whatever a test
// killed, if the process is interrupted (and when the tests end).
func TestMain(m *testing.M) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-ch
		thawAll()
		restartAll()
		signal.Reset()
		syscall.Kill(os.Getpid(), s.(syscall.Signal))
	}()
	code := m.Run()
	thawAll()
	restartAll()
	os.Exit(code)
}

func thawAll() {
	frozenMu.Lock()
	defer frozenMu.Unlock()
	for pid := range frozen {
		syscall.Kill(pid, syscall.SIGCONT)
		delete(frozen, pid)
	}
}

// freeze stops a cluster component with SIGSTOP and returns the function
// that resumes it (also called when the test ends, and at most after
// limit, so that a hung test cannot leave the cluster frozen).
func freeze(t *testing.T, env *harness.Env, component string, limit time.Duration) func() {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.StateDir, "pids", component+".pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", component, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	frozenMu.Lock()
	frozen[pid] = true
	frozenMu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", component, err)
	}
	t.Logf("froze %s (pid %d)", component, pid)
	var once sync.Once
	thaw := func() {
		once.Do(func() {
			syscall.Kill(pid, syscall.SIGCONT)
			frozenMu.Lock()
			delete(frozen, pid)
			frozenMu.Unlock()
			t.Logf("thawed %s", component)
		})
	}
	timer := time.AfterFunc(limit, thaw)
	t.Cleanup(func() { timer.Stop(); thaw() })
	return thaw
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds kdiag and the seed's broken app once.
func binaries(t *testing.T) (kdiag, app string) {
	t.Helper()
	buildOnce.Do(func() {
		root, err := harness.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "kdiag-faults-bin"); buildErr != nil {
			return
		}
		for pkg, out := range map[string]string{"./cmd/kdiag": "kdiag", "./examples/broken-pod/app": "broken-app", "./examples/config-file-missing/app": "config-app"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = &exec.Error{Name: pkg + ": " + string(b), Err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "kdiag"), filepath.Join(binDir, "broken-app")
}

// seedPod starts the seed's broken pod in a fresh namespace and waits
// until it runs but is not ready.
func seedPod(t *testing.T, env *harness.Env) string {
	t.Helper()
	_, app := binaries(t)
	env.ImportImage(t, "kdiag-broken-app:v1", app)
	b := make([]byte, 3)
	rand.Read(b)
	ns := "faults-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	root, _ := harness.RepoRoot()
	m, err := os.ReadFile(filepath.Join(root, "examples/broken-pod/manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(p, []byte(strings.ReplaceAll(string(m), "namespace: default", "namespace: "+ns)), 0o644)
	env.Kubectl(t, "apply", "-f", p)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		out, _, _ := env.RunKubectl("get", "pod", "my-broken-pod", "-n", ns, "-o",
			`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status}`)
		if strings.TrimSpace(out) == "Running False" {
			return ns
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("my-broken-pod in %s never ran", ns)
	return ""
}

// run is one kdiag run: its output, exit code, duration and transcript.
type run struct {
	stdout, stderr string
	code           int
	took           time.Duration
	started        time.Time // when the process started
	tr             *transcript.Transcript
}

func kdiag(t *testing.T, env *harness.Env, extraEnv []string, args ...string) run {
	t.Helper()
	return startKdiag(t, env, extraEnv, args...)()
}

// startKdiag starts a kdiag run and returns the function that waits for
// it (call it from the test's goroutine).
func startKdiag(t *testing.T, env *harness.Env, extraEnv []string, args ...string) func() run {
	t.Helper()
	return startKdiagAt(t, env, filepath.Join(t.TempDir(), "run.jsonl"), extraEnv, args...)
}

// startKdiagAt is startKdiag recording to tp, which the test may read
// while the run goes on (every event is written as it is recorded).
func startKdiagAt(t *testing.T, env *harness.Env, tp string, extraEnv []string, args ...string) func() run {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, append(args, "--record", tp)...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "CONTAINER_RUNTIME_ENDPOINT="+env.RuntimeEndpoint), extraEnv...)
	out, errb := new(bytes.Buffer), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, errb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var took time.Duration
	go func() {
		err := cmd.Wait()
		took = time.Since(t0)
		done <- err
	}()
	return func() run {
		t.Helper()
		err := <-done
		return finish(t, err, out, errb, t0, took, tp, args)
	}
}

func finish(t *testing.T, err error, out, errb *bytes.Buffer, t0 time.Time, took time.Duration, tp string, args []string) run {
	t.Helper()
	r := run{stdout: out.String(), stderr: errb.String(), took: took, started: t0}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tp); err == nil {
		if r.tr, err = transcript.ReadFile(tp); err != nil {
			t.Fatalf("the transcript is not complete: %v\n%s", err, r.stderr)
		}
	}
	t.Logf("kdiag %s: exit %d after %s\n%s%s", strings.Join(args, " "), r.code, r.took.Round(100*time.Millisecond), r.stdout, r.stderr)
	return r
}

// callErrors returns the recorded call errors by built-in.
func callErrors(tr *transcript.Transcript) map[string]*transcript.CallError {
	m := map[string]*transcript.CallError{}
	for _, e := range tr.Events {
		if e.Type == transcript.TypeCall && e.Error != nil {
			m[e.Builtin] = e.Error
		}
	}
	return m
}

func verdictOf(tr *transcript.Transcript) string {
	v := ""
	for _, e := range tr.Events {
		if e.Type == transcript.TypeVerdict {
			v = e.Summary
		}
	}
	return v
}

const probeAPI = `
runbook(name = "probe-api", summary = "Reads a pod twice.", params = [param("pod"), param("namespace")])

def main(p):
    first = attempt(get_pod, p.pod, namespace = p.namespace, timeout = "5s")
    second = attempt(events, "pod", p.pod, namespace = p.namespace)
    verdict("first: %s %s %s | second: %s %s %s" % (first.ok, first.kind, first.error, second.ok, second.kind, second.error))
`

// TestFaultAPIServerFrozen: with the API server stopped, the RBAC
// preflight and the API built-ins end in seconds with an unavailable error
// naming the API server and its address; a second call fails fast; after
// the API server resumes the same run succeeds.
func TestFaultAPIServerFrozen(t *testing.T) {
	env := harness.Cluster(t)
	ns := seedPod(t, env)
	rb := filepath.Join(t.TempDir(), "probe-api.star")
	os.WriteFile(rb, []byte(probeAPI), 0o644)
	args := []string{"run", rb, "-p", "pod=my-broken-pod", "-p", "namespace=" + ns}

	thaw := freeze(t, env, "kube-apiserver", 90*time.Second)
	pre := kdiag(t, env, nil, args...)
	if pre.code == 0 || !strings.Contains(pre.stderr, "rbac: the API server at https://") || !strings.Contains(pre.stderr, "did not answer the permission check") || pre.took > 35*time.Second {
		t.Errorf("preflight with the API server frozen: exit %d after %s; want a clear error naming the API server within 35s", pre.code, pre.took)
	}
	r := kdiag(t, env, []string{"KDIAG_NO_PREFLIGHT=1"}, args...)
	thaw()
	if r.tr == nil || r.code != 0 {
		t.Fatalf("run without preflight: exit %d, transcript %v", r.code, r.tr != nil)
	}
	errs := callErrors(r.tr)
	gp, ev := errs["get_pod"], errs["events"]
	if gp == nil || gp.Kind != "unavailable" || !strings.Contains(gp.Message, "get_pod: the API server at https://") || !strings.Contains(gp.Message, "did not answer within") {
		t.Errorf("get_pod's error: %+v; want kind unavailable naming the API server", gp)
	}
	if ev == nil || ev.Kind != "unavailable" || !strings.Contains(ev.Message, "still not answering") {
		t.Errorf("events' error: %+v; want a fast unavailable error", ev)
	}
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "events" && e.DurationMS > 5000 {
			t.Errorf("events took %.0f ms with the API server known down; want a fast failure", e.DurationMS)
		}
	}
	if r.took > 20*time.Second {
		t.Errorf("the run took %s; want under 20s (5s deadline, 3s health check, a fast second failure)", r.took)
	}
	after := kdiag(t, env, nil, args...)
	if after.code != 0 || after.tr == nil || !strings.HasPrefix(verdictOf(after.tr), "first: True") || !strings.Contains(verdictOf(after.tr), "| second: True") {
		t.Errorf("after the API server resumed: exit %d, verdict %q", after.code, verdictOf(after.tr))
	}
}

const readLogs = `
runbook(name = "read-logs", summary = "Reads a pod's logs.", params = [param("pod"), param("namespace")])

def main(p):
    pod = get_pod(p.pod, namespace = p.namespace)
    got = attempt(logs, p.pod, namespace = p.namespace, tail = 5, timeout = "6s")
    verdict("%s %s" % (got.kind, got.error))
`

// TestFaultKubeletFrozen: with the kubelet stopped, logs (served by the
// API server through the kubelet) ends at its deadline with an error that
// names the kubelet and the pod's node, not the API server.
func TestFaultKubeletFrozen(t *testing.T) {
	env := harness.Cluster(t)
	ns := seedPod(t, env)
	rb := filepath.Join(t.TempDir(), "read-logs.star")
	os.WriteFile(rb, []byte(readLogs), 0o644)
	freeze(t, env, "kubelet", 60*time.Second)
	r := kdiag(t, env, nil, "run", rb, "-p", "pod=my-broken-pod", "-p", "namespace="+ns)
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	e := callErrors(r.tr)["logs"]
	if e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "the kubelet on node "+env.NodeName) || strings.Contains(e.Message, "API server at") {
		t.Errorf("logs' error: %+v; want kind unavailable naming the kubelet on %s", e, env.NodeName)
	}
	if r.took > 25*time.Second {
		t.Errorf("the run took %s; want about the 6s deadline plus the health check", r.took)
	}
}

// TestFaultRuntimeFrozen: with containerd stopped, the seed runbook does
// not hang: logs fail naming the kubelet, find_pid finds the process
// through /proc by the container ID from the pod's status, the trace and
// the probe (which need no runtime) run, and the verdict says what could
// not be checked.
func TestFaultRuntimeFrozen(t *testing.T) {
	env := harness.Cluster(t)
	ns := seedPod(t, env)
	freeze(t, env, "containerd", 120*time.Second)
	r := kdiag(t, env, nil, "run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace="+ns,
		"-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=3s")
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	errs := callErrors(r.tr)
	if e := errs["logs"]; e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "kubelet on node") {
		t.Errorf("logs' error: %+v; want kind unavailable naming the kubelet", e)
	}
	if e := errs["find_pid"]; e == nil || e.Kind != "unavailable" || !strings.Contains(e.Message, "container runtime at") {
		t.Errorf("find_pid's first error: %+v; want kind unavailable naming the runtime", e)
	}
	var source string
	for _, e := range r.tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "find_pid" && e.Error == nil {
			var res struct{ Source string }
			json.Unmarshal(e.Result, &res)
			source = res.Source
		}
	}
	if source != "cgroup" {
		t.Errorf("find_pid's answer came from %q; want cgroup (the runtime is frozen)", source)
	}
	v := verdictOf(r.tr)
	if !strings.Contains(v, "additional_file") || !strings.Contains(v, "not checked:") || !strings.Contains(v, "the logs of") {
		t.Errorf("verdict %q; want the cause and what could not be checked", v)
	}
	if r.took > 90*time.Second {
		t.Errorf("the run took %s; want under 90s", r.took)
	}
}

// TestFaultEtcdFrozen: with etcd stopped, the API server still answers but
// cannot read: get_pod ends at its deadline with an unavailable error that
// names the storage (/readyz's failed etcd check), not a dead API server;
// after etcd resumes the same run succeeds.
func TestFaultEtcdFrozen(t *testing.T) {
	env := harness.Cluster(t)
	ns := seedPod(t, env)
	rb := filepath.Join(t.TempDir(), "probe-api.star")
	os.WriteFile(rb, []byte(probeAPI), 0o644)
	args := []string{"run", rb, "-p", "pod=my-broken-pod", "-p", "namespace=" + ns}
	thaw := freeze(t, env, "etcd", 90*time.Second)
	r := kdiag(t, env, []string{"KDIAG_NO_PREFLIGHT=1"}, args...)
	thaw()
	if r.tr == nil || r.code != 0 {
		t.Fatalf("exit %d, transcript %v", r.code, r.tr != nil)
	}
	gp := callErrors(r.tr)["get_pod"]
	if gp == nil || gp.Kind != "unavailable" || !strings.Contains(gp.Message, "answers, but its storage does not") || !strings.Contains(gp.Message, "check etcd's health") {
		t.Errorf("get_pod's error: %+v; want kind unavailable naming etcd", gp)
	}
	if r.took > 30*time.Second {
		t.Errorf("the run took %s; want about the 5s deadline plus the health checks", r.took)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		after := kdiag(t, env, nil, args...)
		if after.code == 0 && after.tr != nil && strings.HasPrefix(verdictOf(after.tr), "first: True") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after etcd resumed: exit %d, verdict %q", after.code, verdictOf(after.tr))
		}
		time.Sleep(2 * time.Second)
	}
}
