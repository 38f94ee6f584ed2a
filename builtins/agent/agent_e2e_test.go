package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/test/harness"
)

// e2eImage is the agent image the package's cluster tests import (a tag
// of their own: other tests import other builds of kdiag as kdiag-local:v1).
const e2eImage = "kdiag-local:agent-e2e"

var e2eImageOnce struct {
	sync.Once
	err error
	out string
}

// e2eCluster returns the local cluster with this kdiag imported as
// e2eImage (built with CGO_ENABLED=0 once per test binary).
func e2eCluster(tb testing.TB) *harness.Env {
	tb.Helper()
	env := harness.Cluster(tb)
	o := &e2eImageOnce
	o.Do(func() {
		root, err := harness.RepoRoot()
		if err != nil {
			o.err = err
			return
		}
		dir, err := os.MkdirTemp("", "kdiag-agent-image-")
		if err != nil {
			o.err = err
			return
		}
		bin := filepath.Join(dir, "kdiag")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/kdiag")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			o.err, o.out = err, string(b)
			return
		}
		env.ImportImage(tb, e2eImage, bin)
	})
	if o.err != nil {
		tb.Fatalf("build kdiag for the agent image: %v\n%s", o.err, o.out)
	}
	return env
}

// e2eTarget starts an HTTP server pod (httpserver-local:v1, :8080) in a
// fresh namespace and returns the namespace and pod name.
func e2eTarget(tb testing.TB, env *harness.Env) (ns, pod string) {
	tb.Helper()
	ns, pod = e2eNamespace(tb, env)
	env.Kubectl(tb, "run", pod, "-n", ns, "--image=httpserver-local:v1", "--image-pull-policy=Never", "--restart=Never",
		"--overrides", `{"spec":{"nodeName":"`+env.NodeName+`","terminationGracePeriodSeconds":1}}`)
	env.Kubectl(tb, "wait", "-n", ns, "--for=condition=Ready", "pod/"+pod, "--timeout=90s")
	return ns, pod
}

// e2eNamespace creates a fresh namespace, deleted after the test, and
// returns it with the name of the test pod.
func e2eNamespace(tb testing.TB, env *harness.Env) (ns, pod string) {
	b := make([]byte, 3)
	rand.Read(b)
	ns = "agent-" + hex.EncodeToString(b)
	env.Kubectl(tb, "create", "namespace", ns)
	tb.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	return ns, "web"
}

// agentPodsIn lists the names of the agent pods in ns.
func agentPodsIn(tb testing.TB, env *harness.Env, ns string) []string {
	out := env.Kubectl(tb, "get", "pods", "-n", ns, "-l", Selector, "-o", "jsonpath={.items[*].metadata.name}")
	return strings.Fields(out)
}

// TestRouterModes drives a Router against a real pod: in agent mode
// find_pid, http_probe and unix_sockets go through an agent pod on the
// pod's node and answer what node.Local answers, and Close deletes the
// pod; in auto mode, on the pod's node, no agent pod is made.
func TestRouterModes(t *testing.T) {
	env := e2eCluster(t)
	ns, pod := e2eTarget(t, env)
	ctx := context.Background()
	clients := kube.NewClients(env.Kubeconfig, "", "")
	find := &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint}

	r := New(Options{Mode: ModeAgent, Clients: clients, Image: e2eImage})
	res, err := cri.FindPID.Send(ctx, r, find)
	if err != nil {
		t.Fatal(err)
	}
	if pods := agentPodsIn(t, env, ns); len(pods) != 1 {
		t.Fatalf("agent pods after find_pid in agent mode: %v", pods)
	}
	local, err := cri.Local{}.FindPID(ctx, find)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Where, "an agent pod on node "+env.NodeName) || local.Where != "this machine" {
		t.Errorf("where: through the agent %q, locally %q", res.Where, local.Where)
	}
	local.Where = res.Where
	if a, l := mustJSON(t, res), mustJSON(t, local); a != l {
		t.Errorf("find_pid through the agent\n%s\nlocally\n%s", a, l)
	}
	probe := &node.HTTPProbeRequest{Target: &node.Target{PID: res.PID}, URL: "http://127.0.0.1:8080/healthz", Method: "GET", TimeoutMS: 5000}
	ap, err := node.HTTPProbe.Send(ctx, r, probe)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := node.HTTPProbe.Local(ctx, probe)
	if err != nil {
		t.Fatal(err)
	}
	if !ap.OK || ap.Status != lp.Status || ap.Body != lp.Body || ap.Address != lp.Address {
		t.Errorf("http_probe through the agent %+v, locally %+v", ap, lp)
	}
	// A row added after the agent (unix_sockets) is served the same way.
	us := &node.UnixSocketsRequest{Target: node.Target{PID: res.PID}, MaxSockets: 100}
	au, err := node.UnixSockets.Send(ctx, r, us)
	if err != nil {
		t.Fatal(err)
	}
	lu, err := node.UnixSockets.Local(ctx, us)
	if err != nil {
		t.Fatal(err)
	}
	if a, l := mustJSON(t, au), mustJSON(t, lu); a != l || au.PID != res.PID {
		t.Errorf("unix_sockets through the agent\n%s\nlocally\n%s", a, l)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if pods := agentPodsIn(t, env, ns); len(pods) != 0 {
		t.Fatalf("agent pods after Close: %v", pods)
	}

	auto := New(Options{Mode: ModeAuto, Clients: clients, Image: e2eImage})
	res, err = cri.FindPID.Send(ctx, auto, find)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.HTTPProbe.Send(ctx, auto, &node.HTTPProbeRequest{Target: &node.Target{PID: res.PID}, URL: probe.URL, Method: "GET", TimeoutMS: 5000}); err != nil {
		t.Fatal(err)
	}
	if pods := agentPodsIn(t, env, ns); len(pods) != 0 {
		t.Fatalf("auto mode on the pod's node made agent pods: %v", pods)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkHTTPProbe times one http_probe into a pod's network namespace
// four ways, alternating call by call: through the node agent's session
// (the Router, its session already open), through the agent with one exec
// per call (a session opened for the call and closed after it, as each
// call cost before sessions: one exec of the agent, waited for to the
// end), locally on the node (node.Local), and the off-node standard,
// kubectl exec of busybox wget in the pod.
func BenchmarkHTTPProbe(b *testing.B) {
	env := e2eCluster(b)
	ns, pod := e2eTarget(b, env)
	ctx := context.Background()
	r := New(Options{Mode: ModeAgent, Clients: kube.NewClients(env.Kubeconfig, "", ""), Image: e2eImage})
	b.Cleanup(func() { r.Close(context.Background()) })
	res, err := cri.FindPID.Send(ctx, r, &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint})
	if err != nil {
		b.Fatal(err)
	}
	r.mu.Lock()
	a := r.agents[env.NodeName]
	r.mu.Unlock()
	req := &node.HTTPProbeRequest{Target: &node.Target{PID: res.PID}, URL: "http://127.0.0.1:8080/healthz", Method: "GET", TimeoutMS: 5000}
	var session, perCall, local, kubectl time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p, err := node.HTTPProbe.Send(ctx, r, req)
		if err != nil || !p.OK {
			b.Fatalf("agent session: %+v %v", p, err)
		}
		session += time.Since(start)

		start = time.Now()
		s, _, err := a.open(ctx, "http_probe", nil)
		if err != nil {
			b.Fatal(err)
		}
		var pc node.HTTPProbeResult
		if err := s.call(ctx, "http_probe", req, &pc); err != nil || !pc.OK {
			b.Fatalf("agent, one exec per call: %+v %v", pc, err)
		}
		s.close(ctx)
		perCall += time.Since(start)

		start = time.Now()
		if p, err := node.HTTPProbe.Local(ctx, req); err != nil || !p.OK {
			b.Fatalf("local: %+v %v", p, err)
		}
		local += time.Since(start)

		start = time.Now()
		if out, _, err := env.RunKubectl("exec", "-n", ns, pod, "--", "wget", "-q", "-O", "-", req.URL); err != nil || out == "" {
			b.Fatalf("kubectl exec wget: %q %v", out, err)
		}
		kubectl += time.Since(start)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / n }
	b.ReportMetric(ms(session), "session-ms")
	b.ReportMetric(ms(perCall), "exec-per-call-ms")
	b.ReportMetric(ms(local), "local-ms")
	b.ReportMetric(ms(kubectl), "kubectl-exec-ms")
	b.ReportMetric(float64(perCall)/float64(session), "exec-per-call/session")
	b.ReportMetric(float64(kubectl)/float64(session), "kubectl-exec/session")
}

// BenchmarkHTTPProbeParallel times http_probes sent 8 at a time over
// one agent session: the wall time per probe when calls overlap.
func BenchmarkHTTPProbeParallel(b *testing.B) {
	env := e2eCluster(b)
	ns, pod := e2eTarget(b, env)
	ctx := context.Background()
	r := New(Options{Mode: ModeAgent, Clients: kube.NewClients(env.Kubeconfig, "", ""), Image: e2eImage})
	b.Cleanup(func() { r.Close(context.Background()) })
	res, err := cri.FindPID.Send(ctx, r, &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint})
	if err != nil {
		b.Fatal(err)
	}
	req := &node.HTTPProbeRequest{Target: &node.Target{PID: res.PID}, URL: "http://127.0.0.1:8080/healthz", Method: "GET", TimeoutMS: 5000}
	b.SetParallelism(4) // 4 x GOMAXPROCS(2) goroutines
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p, err := node.HTTPProbe.Send(ctx, r, req); err != nil || !p.OK {
				b.Errorf("probe: %+v %v", p, err)
				return
			}
		}
	})
	b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "wall-ms/probe")
}

// BenchmarkAgentStart times the first request of a run in agent mode:
// left-over collection, creating the agent pod, waiting until it runs and
// find_pid through it; then the deletion at the end of the run (until the
// pod is gone), reported separately.
func BenchmarkAgentStart(b *testing.B) {
	env := e2eCluster(b)
	ns, pod := e2eTarget(b, env)
	ctx := context.Background()
	clients := kube.NewClients(env.Kubeconfig, "", "")
	var start, stop time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := New(Options{Mode: ModeAgent, Clients: clients, Image: e2eImage})
		t0 := time.Now()
		if _, err := cri.FindPID.Send(ctx, r, &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.Close(ctx); err != nil {
			b.Fatal(err)
		}
		start, stop = start+t1.Sub(t0), stop+time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(start.Milliseconds())/n, "first-call-ms")
	b.ReportMetric(float64(stop.Milliseconds())/n, "delete-ms")
}

// TestAgentStartFailures: an agent image that cannot be pulled fails the
// call at once with the kubelet's reason; a CRI socket directory the node
// does not have fails it at its deadline with the failed mount (both pods
// are deleted by Close); a namespace whose Pod Security level refuses
// privileged pods is a "forbidden" error pointing at --agent-namespace,
// and the agent works from another namespace.
func TestAgentStartFailures(t *testing.T) {
	env := e2eCluster(t)
	ns, pod := e2eTarget(t, env)
	clients := kube.NewClients(env.Kubeconfig, "", "")

	r := New(Options{Mode: ModeAgent, Clients: clients, Image: "kdiag-no-such-image:v9"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	_, err := cri.FindPID.Send(ctx, r, &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint})
	if err == nil || !strings.HasPrefix(err.Error(), "find_pid: node agent: agent pod "+ns+"/kdiag-agent-") ||
		!strings.Contains(err.Error(), "cannot start: ErrImage") || !strings.Contains(err.Error(), "--agent-image must name an image of this kdiag, with kdiag at /kdiag") {
		t.Errorf("bad image: %v", err)
	}
	t.Logf("bad image, after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("bad image: failed after %s, want at once", d)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	r = New(Options{Mode: ModeAgent, Clients: clients, Image: e2eImage})
	ctx, cancel = context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	_, err = cri.FindPID.Send(ctx, r, &cri.FindPIDRequest{Pod: pod, Namespace: ns, RuntimeEndpoint: "unix:///kdiag-no-such-dir/containerd.sock"})
	if err == nil || !strings.Contains(err.Error(), "did not start in time (waiting: ContainerCreating; last warning: FailedMount: ") ||
		!strings.Contains(err.Error(), "/kdiag-no-such-dir") {
		t.Errorf("missing socket directory: %v", err)
	}
	t.Logf("missing socket directory: %v", err)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pods := agentPodsIn(t, env, ns); len(pods) != 0 {
		t.Fatalf("agent pods after Close: %v", pods)
	}

	// Pod Security "baseline" refuses the privileged agent pod; the
	// agent then goes in a namespace that allows it (--agent-namespace).
	env.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=baseline")
	find := &cri.FindPIDRequest{Pod: pod, Namespace: ns, EnvEndpoint: env.RuntimeEndpoint}
	r = New(Options{Mode: ModeAgent, Clients: clients, Image: e2eImage})
	_, err = cri.FindPID.Send(context.Background(), r, find)
	if engine.KindOf(err) != engine.KindForbidden || !strings.Contains(err.Error(), `violates PodSecurity "baseline:latest"`) ||
		!strings.HasSuffix(err.Error(), "the agent pod is privileged: pass --agent-namespace a namespace whose pod-security.kubernetes.io/enforce level is privileged") {
		t.Errorf("baseline namespace: %v", err)
	}
	other, _ := e2eNamespace(t, env)
	r = New(Options{Mode: ModeAgent, Clients: clients, Image: e2eImage, Namespace: other})
	if _, err := cri.FindPID.Send(context.Background(), r, find); err != nil {
		t.Fatalf("agent in namespace %s: %v", other, err)
	}
	if pods := agentPodsIn(t, env, other); len(pods) != 1 {
		t.Errorf("agent pods in %s: %v", other, pods)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
