package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// agentImage is the image the tests' agent pods run: this build of kdiag.
const agentImage = "kdiag-local:v1"

var agentImageOnce sync.Once

// agentCluster returns the seed cluster with this kdiag imported as the
// agent image.
func agentCluster(t *testing.T) *harness.Env {
	env := seedCluster(t)
	bin, _ := binaries(t)
	agentImageOnce.Do(func() { env.ImportImage(t, agentImage, bin) })
	return env
}

// agentPodState is what the tests look at in an agent pod.
type agentPodState struct {
	heartbeat string
	deleting  bool
}

// agentPods returns the agent pods in ns by name.
func agentPods(t *testing.T, env *harness.Env, ns string) map[string]agentPodState {
	t.Helper()
	out := env.Kubectl(t, "get", "pods", "-n", ns, "-l", agent.Selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.kdiag\.io/heartbeat} {.metadata.deletionTimestamp}{"\n"}{end}`)
	pods := map[string]agentPodState{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			pods[f[0]] = agentPodState{heartbeat: f[1], deleting: len(f) > 2}
		}
	}
	return pods
}

// waitAgentPod waits until ns has an agent pod not in skip, and returns it.
func waitAgentPod(t *testing.T, env *harness.Env, ns string, skip map[string]bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for name := range agentPods(t, env, ns) {
			if !skip[name] {
				return name
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no new agent pod in %s", ns)
	return ""
}

// TestAgentDiagnosesTheSeed runs the seed runbook with --node-mode=agent:
// find_pid, enter_ns, http_probe, strace_sample and list_dir run in an
// agent pod, the report names the key, and no agent pod remains. The same
// run in local mode makes the same calls with the same arguments, and
// the node built-ins' results have the same shape (and, where nothing
// varies, the same values).
func TestAgentDiagnosesTheSeed(t *testing.T) {
	env := agentCluster(t)
	ns := namespace(t, env, "agent")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	args := []string{"run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace=" + ns,
		"-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=5s", "--agent-image", agentImage}

	viaAgent := filepath.Join(t.TempDir(), "agent.jsonl")
	out, errOut, code := kdiag(t, env, append(args, "--node-mode=agent", "--record", viaAgent)...)
	if code != 0 {
		t.Fatalf("agent run: exit %d\n%s\n%s", code, out, errOut)
	}
	want := "suspect: ConfigMap " + ns + "/myconfig key additional_file"
	if !strings.Contains(out, "WARNING  "+want) {
		t.Fatalf("agent run: no finding %q:\n%s", want, out)
	}
	if pods := agentPods(t, env, ns); len(pods) != 0 {
		t.Fatalf("agent pods left after the run: %v", pods)
	}
	ta := readTranscript(t, viaAgent)
	if c := ta.Footer.Cleanups; len(c) != 1 || !strings.HasPrefix(c[0].Name, "delete node agent pod "+ns+"/kdiag-agent-") || c[0].Error != "" {
		t.Fatalf("agent run: cleanups %+v, want the agent pod's deletion", c)
	}

	local := filepath.Join(t.TempDir(), "local.jsonl")
	if out, errOut, code := kdiag(t, env, append(args, "--node-mode=local", "--record", local)...); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("local run: exit %d\n%s\n%s", code, out, errOut)
	}
	tl := readTranscript(t, local)
	if len(tl.Footer.Cleanups) != 0 {
		t.Errorf("local run: cleanups %+v", tl.Footer.Cleanups)
	}
	ca, cl := calls(ta), calls(tl)
	if len(ca) != len(cl) {
		t.Fatalf("agent run made %d calls, local run %d", len(ca), len(cl))
	}
	nodeCalls := 0
	for i := range ca {
		a, l := ca[i], cl[i]
		if a.Builtin != l.Builtin || !bytes.Equal(a.Args, l.Args) || (a.Error == nil) != (l.Error == nil) {
			t.Errorf("call %d: agent %s %s (error %v), local %s %s (error %v)", i, a.Builtin, a.Args, a.Error, l.Builtin, l.Args, l.Error)
			continue
		}
		if !isAgentBuiltin(a.Builtin) {
			continue
		}
		nodeCalls++
		if ka, kl := keyPaths(t, a.Result), keyPaths(t, l.Result); !equalStrings(ka, kl) {
			t.Errorf("%s: result shapes differ:\nagent %v\nlocal %v", a.Builtin, ka, kl)
		}
		for _, field := range stableFields[a.Builtin] {
			if va, vl := field(t, a.Result), field(t, l.Result); va != vl {
				t.Errorf("%s: agent %s, local %s", a.Builtin, va, vl)
			}
		}
	}
	if nodeCalls != 3 {
		t.Errorf("%d node calls compared, want find_pid, strace_sample (which sends the probe), list_dir", nodeCalls)
	}
	// The agent pod is privileged: it traces with eBPF, as kdiag does here.
	for _, c := range ca {
		if c.Builtin == "strace_sample" {
			if b := field("backend")(t, c.Result); b != `backend="ebpf"` {
				t.Errorf("the agent's strace_sample ran on %s, want eBPF", b)
			}
		}
	}

	// The agent run's transcript replays, with no cluster, to its report.
	rep, _, code := kdiag(t, env, "replay", "-q", "--kubeconfig", "/nonexistent", viaAgent)
	if code != 0 || rep != out {
		t.Errorf("replay of the agent run: exit %d, report differs:\n%s\n---\n%s", code, rep, out)
	}
}

// stableFields pick, per built-in, result values that do not change
// between two runs against the same container.
var stableFields = map[string][]func(*testing.T, json.RawMessage) string{
	"find_pid":      {field("pid"), field("container_id"), field("endpoint"), field("namespaces"), field("state")},
	"enter_ns":      {whole},
	"http_probe":    {field("ok"), field("status"), field("body"), field("error"), field("request_headers")},
	"strace_sample": {field("pid"), field("detached"), field("exited"), field("backend")},
	"list_dir":      {field("path"), field("exists"), field("entries")},
}

func field(name string) func(*testing.T, json.RawMessage) string {
	return func(t *testing.T, raw json.RawMessage) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return name + "=" + string(m[name])
	}
}

func whole(_ *testing.T, raw json.RawMessage) string { return string(raw) }

// isAgentBuiltin reports whether a built-in is served by the node agent.
func isAgentBuiltin(name string) bool {
	for _, b := range agent.Builtins {
		if b == name {
			return true
		}
	}
	return false
}

// calls returns the call events of a transcript.
func calls(tr *transcript.Transcript) []*transcript.Event {
	var out []*transcript.Event
	for _, e := range tr.Events {
		if e.Type == transcript.TypeCall {
			out = append(out, e)
		}
	}
	return out
}

// keyPaths lists the paths of every object key in a JSON value, elements
// of arrays as []: the shape of a result.
func keyPaths(t *testing.T, raw json.RawMessage) []string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if prefix == "headers" || prefix == "namespaces" || prefix == "inodes" {
					k = "*" // keys that are data, not fields
				}
				set[prefix+"."+k] = true
				walk(prefix+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", v)
	var out []string
	for k := range set {
		out = append(out, strings.TrimPrefix(k, "."))
	}
	sort.Strings(out)
	return out
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// holdRunbook finds the broken container's PID through the agent, looks
// at its processes, then fails or waits.
const holdRunbook = `runbook(
    name = "agent-hold",
    summary = "Finds a PID through the node agent, then fails or waits.",
    params = [param("pod"), param("namespace"), param("then", default = "wait")],
)

def main(p):
    t = find_pid(pod = p.pod, namespace = p.namespace, container = "broken-container")
    ps(pid = t.pid)
    if p.then == "fail":
        fail("failing on purpose after find_pid")
    sleep("300s")
`

// holdRun starts kdiag on holdRunbook in agent mode.
func holdRun(t *testing.T, env *harness.Env, ns, then, record string) *exec.Cmd {
	t.Helper()
	rb := filepath.Join(t.TempDir(), "hold.star")
	if err := os.WriteFile(rb, []byte(holdRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, _ := binaries(t)
	cmd := exec.Command(bin, "run", rb, "-p", "pod=my-broken-pod", "-p", "namespace="+ns, "-p", "then="+then,
		"--node-mode=agent", "--agent-image", agentImage, "--record", record)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "CONTAINER_RUNTIME_ENDPOINT="+env.RuntimeEndpoint)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kdiag output:\n%s", out.String())
		}
	})
	return cmd
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// TestAgentPodLifecycle: the agent pod is deleted when the run fails and
// when it is cancelled; while a run lives its heartbeat is refreshed and
// the agent answers a call over `kdiag agent session` (and refuses another protocol
// version); a SIGKILLed kdiag leaves its agent behind, and the next run
// deletes it once its heartbeat is over a minute old, but not the agent of
// another run that is alive.
func TestAgentPodLifecycle(t *testing.T) {
	env := agentCluster(t)
	ns := namespace(t, env, "agentlife")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")

	t.Run("failed run", func(t *testing.T) {
		tp := filepath.Join(t.TempDir(), "fail.jsonl")
		if code := exitCode(t, holdRun(t, env, ns, "fail", tp)); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		if tr := readTranscript(t, tp); tr.Footer.Status != transcript.StatusFailed || len(tr.Footer.Cleanups) != 1 || tr.Footer.Cleanups[0].Error != "" {
			t.Fatalf("footer %+v", tr.Footer)
		}
		if pods := agentPods(t, env, ns); len(pods) != 0 {
			t.Fatalf("agent pods left after a failed run: %v", pods)
		}
	})

	t.Run("cancelled run", func(t *testing.T) {
		tp := filepath.Join(t.TempDir(), "cancel.jsonl")
		cmd := holdRun(t, env, ns, "wait", tp)
		pod := waitAgentPod(t, env, ns, nil)
		waitTranscript(t, tp, `"builtin":"ps"`)

		// The heartbeat moves on while the run lives.
		first := agentPods(t, env, ns)[pod]
		deadline := time.Now().Add(25 * time.Second)
		for agentPods(t, env, ns)[pod] == first {
			if time.Now().After(deadline) {
				t.Fatalf("heartbeat of %s stuck at %s", pod, first.heartbeat)
			}
			time.Sleep(time.Second)
		}

		// The agent answers a request, and refuses another protocol version.
		req := fmt.Sprintf(`{"v":2,"id":1,"op":"ps","request":{"target":{"pid":%d}}}`, findPID(t, tp))
		if out := agentCall(t, env, ns, pod, req); !strings.HasPrefix(out, `{"v":2,"id":1,"result":{"pid_namespace":"pid:[`) || !strings.Contains(out, `"processes":[{`) {
			t.Errorf("agent call: %s", out)
		}
		out := agentCall(t, env, ns, pod, `{"v":3,"id":1,"op":"ps","request":{}}`)
		if !strings.Contains(out, `"message":"node agent speaks protocol v2, this kdiag speaks v3: use an agent image of the same kdiag version (--agent-image)"`) {
			t.Errorf("agent call with v3: %s", out)
		}

		cmd.Process.Signal(syscall.SIGINT)
		if code := exitCode(t, cmd); code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
		if tr := readTranscript(t, tp); tr.Footer.Status != transcript.StatusCancelled || len(tr.Footer.Cleanups) != 1 {
			t.Fatalf("footer %+v", tr.Footer)
		}
		if pods := agentPods(t, env, ns); len(pods) != 0 {
			t.Fatalf("agent pods left after a cancelled run: %v", pods)
		}
	})

	t.Run("killed run", func(t *testing.T) {
		killed := holdRun(t, env, ns, "wait", filepath.Join(t.TempDir(), "killed.jsonl"))
		orphan := waitAgentPod(t, env, ns, nil)
		killed.Process.Kill()
		killed.Wait()
		killedAt := time.Now()

		// Another run that is alive has a fresh agent of its own.
		aliveTP := filepath.Join(t.TempDir(), "alive.jsonl")
		alive := holdRun(t, env, ns, "wait", aliveTP)
		live := waitAgentPod(t, env, ns, map[string]bool{orphan: true})
		waitTranscript(t, aliveTP, `"builtin":"ps"`)

		// Nobody deletes the orphan until its heartbeat is a minute old.
		time.Sleep(time.Until(killedAt.Add(15 * time.Second)))
		if _, ok := agentPods(t, env, ns)[orphan]; !ok {
			t.Fatalf("the killed run's agent %s disappeared before any run collected it", orphan)
		}
		time.Sleep(time.Until(killedAt.Add(70 * time.Second)))
		beat := agentPods(t, env, ns)[orphan].heartbeat
		if at, err := time.Parse(time.RFC3339, beat); err != nil || time.Since(at) < 60*time.Second {
			t.Fatalf("orphan %s heartbeat %q: want over a minute old", orphan, beat)
		}

		// The next run collects the orphan before creating its agent.
		next := filepath.Join(t.TempDir(), "next.jsonl")
		if code := exitCode(t, holdRun(t, env, ns, "fail", next)); code != 1 {
			t.Fatalf("next run: exit %d, want 1", code)
		}
		pods := agentPods(t, env, ns)
		if state, ok := pods[orphan]; ok && !state.deleting {
			t.Fatalf("the orphan %s is still there and not being deleted after the next run", orphan)
		}
		if state, ok := pods[live]; !ok || state.deleting {
			t.Fatalf("the live run's agent %s was collected: %v", live, pods)
		}
		alive.Process.Signal(syscall.SIGINT)
		if code := exitCode(t, alive); code != 130 {
			t.Fatalf("live run: exit %d, want 130", code)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(agentPods(t, env, ns)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("agent pods left: %v", agentPods(t, env, ns))
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// waitTranscript waits until a transcript has a line containing s.
func waitTranscript(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); lineWith(string(b), s, `"type":"call"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never got %s:\n%s", path, s, b)
}

// findPID returns the PID find_pid found in a transcript being written.
func findPID(t *testing.T, path string) int {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		var e transcript.Event
		if json.Unmarshal([]byte(l), &e) == nil && e.Builtin == "find_pid" {
			var r struct{ PID int }
			json.Unmarshal(e.Result, &r)
			return r.PID
		}
	}
	t.Fatalf("no find_pid in %s", path)
	return 0
}

// agentCall runs `kdiag agent session` in an agent pod with kubectl exec,
// sends one request frame and returns the answer after the hello, keeping
// the input open until the answer is in (its end cancels the request).
func agentCall(t *testing.T, env *harness.Env, ns, pod, request string) string {
	t.Helper()
	cmd := exec.Command(env.KubectlPath(), "--kubeconfig", env.Kubeconfig, "exec", "-i", "-n", ns, pod, "--", agent.DefaultBinary, "agent", "session")
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, request+"\n")
	rd := bufio.NewReader(outPipe)
	hello, herr := rd.ReadString('\n')
	line, err := rd.ReadString('\n')
	in.Close()
	if werr := cmd.Wait(); herr != nil || err != nil || werr != nil || !strings.HasPrefix(hello, `{"v":2,"id":0,"hello":{"pid":`) {
		t.Fatalf("kubectl exec %s agent session: hello %q: %v, %v, %v", pod, hello, herr, err, werr)
	}
	return strings.TrimSpace(line)
}

// TestAgentIdleExitsOnSIGTERM: the agent pod's main process ends with
// status 0 on SIGTERM (which the kubelet sends when the pod is deleted).
func TestAgentIdleExitsOnSIGTERM(t *testing.T) {
	bin, _ := binaries(t)
	cmd := exec.Command(bin, "agent", "idle")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if cmd.ProcessState != nil {
		t.Fatal("agent idle exited by itself")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent idle after SIGTERM: %v", err)
		}
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		t.Fatal("agent idle ignored SIGTERM")
	}
}
