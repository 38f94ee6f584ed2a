package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/test/harness"
)

// sessionRouter starts an HTTP server pod in a fresh agentsession-
// namespace, finds its process through an agent-mode Router (which makes
// the agent pod) and returns the Router, the agent, the namespace and the
// server's PID. The Router is closed after the test.
func sessionRouter(t *testing.T, env *harness.Env) (*Router, *agentPod, string, int) {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	ns := "agentsession-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	env.Kubectl(t, "run", "web", "-n", ns, "--image=httpserver-local:v1", "--image-pull-policy=Never", "--restart=Never",
		"--overrides", `{"spec":{"nodeName":"`+env.NodeName+`","terminationGracePeriodSeconds":1}}`)
	env.Kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/web", "--timeout=90s")
	r := New(Options{Mode: ModeAgent, Clients: kube.NewClients(env.Kubeconfig, "", ""), Image: e2eImage})
	t.Cleanup(func() { r.Close(context.Background()) })
	res, err := cri.FindPID.Send(context.Background(), r, &cri.FindPIDRequest{Pod: "web", Namespace: ns, EnvEndpoint: env.RuntimeEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	a := r.agents[env.NodeName]
	r.mu.Unlock()
	if a == nil {
		t.Fatal("no agent after find_pid in agent mode")
	}
	return r, a, ns, res.PID
}

// sessionProcesses returns the PIDs of the `kdiag agent session`
// processes in the agent pod's cgroup (the agent pod shares the host's
// PID namespace, and this test runs on the node).
func sessionProcesses(t *testing.T, env *harness.Env, a *agentPod) []int {
	t.Helper()
	uid := strings.TrimSpace(env.Kubectl(t, "get", "pod", "-n", a.ns, a.name, "-o", "jsonpath={.metadata.uid}"))
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if string(cmd) == a.binary+"\x00agent\x00session\x00" &&
			(bytes.Contains(cg, []byte(uid)) || bytes.Contains(cg, []byte(strings.ReplaceAll(uid, "-", "_")))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestSessionOnCluster drives one agent pod's session on the cluster:
// 30 http_probes in a row and 20 at once go over a single exec (one
// session opened, one `kdiag agent session` process in the agent pod);
// a 30 s strace_sample of the server is cancelled while probes go on,
// and the server is no longer traced when the call returns.
func TestSessionOnCluster(t *testing.T) {
	env := e2eCluster(t)
	r, a, _, pid := sessionRouter(t, env)
	ctx := context.Background()
	probe := &node.HTTPProbeRequest{Target: &node.Target{PID: pid}, URL: "http://127.0.0.1:8080/healthz", Method: "GET", TimeoutMS: 5000}
	for i := 0; i < 30; i++ {
		if p, err := node.HTTPProbe.Send(ctx, r, probe); err != nil || !p.OK {
			t.Fatalf("probe %d: %+v %v", i, p, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := node.HTTPProbe.Send(ctx, r, probe)
			if err == nil && !p.OK {
				err = errors.New("not ok")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent probe: %v", err)
		}
	}
	if n, spid := a.opened(); n != 1 {
		t.Errorf("%d sessions opened for 51 calls, want 1", n)
	} else if pids := sessionProcesses(t, env, a); len(pids) != 1 || pids[0] != spid {
		t.Errorf("session processes in the agent pod %v, want [%d] (the hello's)", pids, spid)
	}

	sctx, cancel := context.WithCancel(ctx)
	traced := make(chan error, 1)
	go func() {
		_, err := trace.Sample.Send(sctx, r, &trace.Request{PID: pid, DurationNS: int64(30 * time.Second), MaxEvents: 100, Backend: "ptrace"})
		traced <- err
	}()
	waitTraced(t, pid)
	for i := 0; i < 10; i++ {
		if p, err := node.HTTPProbe.Send(ctx, r, probe); err != nil || !p.OK {
			t.Fatalf("probe beside the sample: %+v %v", p, err)
		}
	}
	start := time.Now()
	cancel()
	err := <-traced
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "strace_sample: node agent "+a.ns+"/"+a.name+" on node "+env.NodeName+": ") {
		t.Errorf("cancelled sample: %v", err)
	}
	if tr := tracerOf(t, pid); tr != "0" {
		t.Errorf("the sample returned while the server was still traced by %s", tr)
	}
	t.Logf("cancelled after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if n, _ := a.opened(); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}

// TestSessionBreaks: the session process killed in the agent pod in the
// middle of a call. A strace_sample (a read) is retried once on a new
// session and succeeds; a run (whose command may change things) fails
// with an error naming the agent pod and its node, and is not retried.
// The agent pod deleted during a run: the run fails naming the agent, and
// Close leaves no agent pod behind.
func TestSessionBreaks(t *testing.T) {
	env := e2eCluster(t)
	r, a, ns, pid := sessionRouter(t, env)
	ctx := context.Background()
	where := "node agent " + a.ns + "/" + a.name + " on node " + env.NodeName

	_, killed := a.opened()
	done := make(chan error, 1)
	go func() {
		res, err := trace.Sample.Send(ctx, r, &trace.Request{PID: pid, DurationNS: int64(2 * time.Second), MaxEvents: 100, Backend: "ptrace"})
		if err == nil && !res.Detached {
			err = errors.New("not detached")
		}
		done <- err
	}()
	waitTraced(t, pid)
	syscall.Kill(killed, syscall.SIGKILL)
	if err := <-done; err != nil {
		t.Errorf("strace_sample with its session killed: %v", err)
	}
	if n, spid := a.opened(); n != 2 || spid == killed {
		t.Errorf("after the kill: %d sessions, session process %d (killed %d)", n, spid, killed)
	}

	// run's target: a process of this host (the node), in its namespaces.
	sleep := exec.Command("sleep", "120")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	runSleep := func() chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := node.Run.Send(ctx, r, &node.RunRequest{Target: node.Target{PID: sleep.Process.Pid}, Command: []string{"sleep", "20"}, TimeoutMS: 30000})
			ch <- err
		}()
		return ch
	}
	_, killed = a.opened()
	ran := runSleep()
	waitChild(t, killed, "sleep")
	start := time.Now()
	syscall.Kill(killed, syscall.SIGKILL)
	err := <-ran
	want := "run: " + where + ": the session broke during the call: " + a.binary + " agent session exited with code 137; not retried: run may have had effects on the node"
	if err == nil || err.Error() != want || engine.KindOf(err) != engine.KindUnavailable {
		t.Errorf("run with its session killed:\n got %v\nwant %s", err, want)
	}
	t.Logf("run failed %s after the kill: %v", time.Since(start).Round(time.Millisecond), err)
	if n, _ := a.opened(); n != 2 {
		t.Errorf("run was retried: %d sessions", n)
	}

	ran = runSleep()
	deadline := time.Now().Add(20 * time.Second)
	for n, _ := a.opened(); n != 3 || len(sessionProcesses(t, env, a)) == 0; n, _ = a.opened() {
		if time.Now().After(deadline) {
			t.Fatal("no third session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, spid := a.opened()
	waitChild(t, spid, "sleep")
	env.Kubectl(t, "delete", "pod", "-n", a.ns, a.name, "--wait=false")
	err = <-ran
	if err == nil || !strings.HasPrefix(err.Error(), "run: "+where+": the session broke during the call: ") || !strings.HasSuffix(err.Error(), "; not retried: run may have had effects on the node") {
		t.Errorf("run with its agent pod deleted: %v", err)
	}
	t.Logf("agent pod deleted: %v", err)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if pods := agentPodsIn(t, env, ns); len(pods) != 0 {
		t.Errorf("agent pods after Close: %v", pods)
	}
}

// waitChild waits until process pid has a descendant named comm.
func waitChild(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if hasDescendant(pid, comm) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d never started %s", pid, comm)
}

// hasDescendant reports whether pid has a descendant named comm.
func hasDescendant(pid int, comm string) bool {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	name := map[int]string{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p], name[p] = pp, s[open+1:end]
	}
	for p, n := range name {
		if n != comm {
			continue
		}
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				return true
			}
		}
	}
	return false
}

// TestSessionHostileFrame: a file of 12 MiB of control bytes (valid
// UTF-8, six bytes each in JSON) read whole through the agent would be a
// 72 MiB answer, over the frame cap (transcript.MaxLineBytes, 64 MiB): the
// agent answers an error instead, and the session goes on.
func TestSessionHostileFrame(t *testing.T) {
	env := e2eCluster(t)
	r, a, _, _ := sessionRouter(t, env)
	path := filepath.Join(t.TempDir(), "hostile")
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, 12<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	self := node.Target{PID: os.Getpid()}
	_, err := node.ReadFile.Send(ctx, r, &node.FileRequest{Target: self, Path: path, MaxBytes: node.MaxReadBytes})
	if err == nil || !strings.HasPrefix(err.Error(), "read_file: node agent: the result is 75497") || !strings.Contains(err.Error(), "over the 67107840-byte frame cap") {
		t.Errorf("hostile file: %v", err)
	}
	if rf, err := node.ReadFile.Send(ctx, r, &node.FileRequest{Target: self, Path: path, MaxBytes: 100}); err != nil || len(rf.Content) != 100 {
		t.Errorf("the session after the refusal: %v", err)
	}
	if n, _ := a.opened(); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}
