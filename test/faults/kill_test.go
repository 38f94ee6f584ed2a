//go:build faults

package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// killCases is the kill/restart matrix: each component is killed with
// SIGKILL as a run of the seed runbook starts (local and agent mode), and started
// again down later. names are what an error blamed on the fault may say
// (one of them).
var killCases = []struct {
	component string
	down      time.Duration
	names     []string
}{
	{"kube-apiserver", 4 * time.Second, []string{"the API server at https://"}},
	{"etcd", 4 * time.Second, []string{"its storage does not", "etcd", "the API server at https://"}},
	{"kubelet", 4 * time.Second, []string{"the kubelet on node "}},
	{"containerd", 4 * time.Second, []string{"the container runtime at ", "the kubelet on node "}},
}

// killTimeout is the runs' --timeout in the kill matrix.
const killTimeout = 90 * time.Second

// TestFaultKilled: each component of killCases is killed (SIGKILL) as the
// seed runbook starts and started again a few seconds later. The run ends
// within its --timeout with a complete transcript and either the seed's
// cause (the component came back within the built-ins' retries), a
// degraded verdict that says what was not checked, or an error naming the
// component; any unavailable or timeout error names it; nothing is left in
// the namespace but the seed's pod; the cluster is healthy afterwards.
func TestFaultKilled(t *testing.T) {
	env := harness.Cluster(t)
	bin, _ := binaries(t)
	env.ImportImage(t, agentImage, bin)
	ns := seedPod(t, env)
	for _, mode := range []string{"local", "agent"} {
		t.Run(mode, func(t *testing.T) { killMatrix(t, env, ns, mode) })
	}
}

// killMatrix runs killCases with the node built-ins in mode (local, or
// agent: through an agent pod on node 1, deleted at the end of each run).
func killMatrix(t *testing.T, env *harness.Env, ns, mode string) {
	for _, c := range killCases {
		t.Run(c.component, func(t *testing.T) {
			waitSeedRunning(t, env, ns)
			k := kill(t, env, c.component)
			args := []string{"run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace=" + ns,
				"-p", "fix=false", "-p", "ephemeral=false", "-p", "trace=3s", "--timeout", killTimeout.String()}
			if mode == "agent" {
				args = append(args, "--node-mode=agent", "--agent-image", agentImage)
			}
			wait := startKdiag(t, env, nil, args...)
			time.Sleep(c.down)
			k.Start(t)
			r := wait()
			if r.took > killTimeout+10*time.Second {
				t.Errorf("the run took %s; want it to end within its --timeout %s", r.took, killTimeout)
			}
			names := func(s string) bool {
				for _, n := range c.names {
					if strings.Contains(s, n) {
						return true
					}
				}
				return false
			}
			var first *transcript.Event
			if r.tr != nil {
				for i, e := range r.tr.Events {
					if e.Type != transcript.TypeCall || e.Error == nil {
						continue
					}
					if first == nil {
						first = r.tr.Events[i]
					}
					if (e.Error.Kind == "unavailable" || e.Error.Kind == "timeout") && !names(e.Error.Message) {
						t.Errorf("%s's error does not name %s: %+v", e.Builtin, c.component, e.Error)
					}
				}
			}
			v := ""
			if r.tr != nil {
				v = verdictOf(r.tr)
			}
			outcome := ""
			switch {
			case r.code != 0:
				outcome = "error"
				if !names(r.stderr) {
					t.Errorf("exit %d; want the error to name %s (one of %q)", r.code, c.component, c.names)
				}
			case r.tr == nil:
				t.Errorf("exit 0 without a transcript")
			case strings.Contains(v, "not checked: "):
				outcome = "degraded"
			case first == nil && strings.Contains(v, "additional_file"):
				outcome = "rode out"
			default:
				t.Errorf("verdict %q with call errors %v; want the seed's cause, a degraded verdict or an error naming %s", v, callErrors(r.tr), c.component)
			}
			firstErr := "none"
			if first != nil {
				firstErr = first.Builtin + " after " + (time.Duration(first.DurationMS) * time.Millisecond).Round(100*time.Millisecond).String() + ": " + first.Error.Message
			}
			startup := "?"
			if r.tr != nil && r.tr.Header != nil && r.tr.Header.Start != nil {
				startup = r.tr.Header.Start.Sub(r.started).Round(100 * time.Millisecond).String()
			}
			t.Logf("FIGURES %s mode, %s killed, started again after %s, cluster healthy %s later; run: %s, exit %d after %s (runbook started after %s); first call error: %s",
				mode, c.component, c.down, k.Recovery.Round(100*time.Millisecond), outcome, r.code, r.took.Round(100*time.Millisecond), startup, firstErr)
			if mode == "agent" {
				waitNoAgent(t, env, ns, 60*time.Second)
			}
			out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-o", "name")
			if strings.TrimSpace(out) != "pod/my-broken-pod" {
				t.Errorf("pods in %s after the run: %q; want only the seed's", ns, out)
			}
		})
	}
}

// waitSeedRunning waits until the seed's pod runs and is not ready, and
// stays so for 4 s (two probe periods), as after a component's restart it
// may take a moment (a restarted kubelet reports a running container
// ready until its probe fails again, after the API still said not ready).
func waitSeedRunning(t *testing.T, env *harness.Env, ns string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var since time.Time
	for {
		out, _, _ := env.RunKubectl("get", "pod", "my-broken-pod", "-n", ns, "-o",
			`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].containerID}`)
		if f := strings.Fields(out); len(f) == 3 && f[0] == "Running" && f[1] == "False" {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) >= 4*time.Second {
				return
			}
		} else {
			since = time.Time{}
		}
		if time.Now().After(deadline) {
			t.Fatalf("my-broken-pod in %s does not run not ready: %q", ns, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
