package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// TestCancelAtEachStep sends SIGINT to kdiag at each step of the seed
// runbook (inside strace_sample for the node step): kdiag exits 130, the
// transcript is complete and ends cancelled, the traced app is running
// and untraced, and no helper pod is left in the namespace.
func TestCancelAtEachStep(t *testing.T) {
	env := seedCluster(t)
	ns := namespace(t, env, "cancel")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	args := []string{"run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace=" + ns, "-p", "fix=false", "-p", "trace=10s", "--yes"}

	// A full run first gives the steps and the app's host PID.
	full := filepath.Join(t.TempDir(), "full.jsonl")
	if out, errOut, code := kdiag(t, env, append(args, "-p", "trace=1s", "--record", full)...); code != 0 {
		t.Fatalf("full run exit %d\n%s\n%s", code, out, errOut)
	}
	tr := readTranscript(t, full)
	var steps []string
	pid := ""
	for _, e := range tr.Events {
		if e.Type == transcript.TypeStepStart {
			steps = append(steps, e.Step)
		}
		if e.Type == transcript.TypeCall && e.Builtin == "find_pid" {
			var r struct{ PID int }
			json.Unmarshal(e.Result, &r)
			pid = strconv.Itoa(r.PID)
		}
	}
	if len(steps) < 4 || pid == "" {
		t.Fatalf("full run: steps %v, pid %q", steps, pid)
	}
	bin, _ := binaries(t)
	for i, step := range steps {
		last := i == len(steps)-1
		t.Run(step, func(t *testing.T) {
			tp := filepath.Join(t.TempDir(), "run.jsonl")
			runArgs := append(append([]string{}, args...), "--record", tp)
			if strings.Contains(step, "from the node") {
				// The sample ends soon after the probe's answer; tracing the
				// background as well keeps it going until SIGINT arrives.
				runArgs = append(runArgs, "-p", "background=10s")
			}
			cmd := exec.Command(bin, runArgs...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "CONTAINER_RUNTIME_ENDPOINT="+env.RuntimeEndpoint)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			marker := `"type":"step_start"`
			waitFor := `"step":"` + step + `"`
			if strings.Contains(step, "from the node") {
				marker, waitFor = `"builtin":"find_pid"`, `"type":"call"` // then strace_sample runs
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				b, _ := os.ReadFile(tp)
				if lineWith(string(b), marker, waitFor) {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("never reached step %q:\n%s", step, b)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if strings.Contains(step, "from the node") {
				time.Sleep(300 * time.Millisecond) // inside the sample
			}
			cmd.Process.Signal(syscall.SIGINT)
			err := cmd.Wait()
			got := readTranscript(t, tp)
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee) && ee.ExitCode() == 130:
				if got.Footer.Status != transcript.StatusCancelled {
					t.Fatalf("exit 130 but footer status %q", got.Footer.Status)
				}
			case err == nil && last && got.Footer.Status == transcript.StatusOK:
				// The last step is a few milliseconds long: the run may end before the signal arrives.
				t.Logf("the run finished before SIGINT arrived")
			default:
				t.Fatalf("exit %v, footer %q; want 130 and cancelled", err, got.Footer.Status)
			}
			if state, tracer := statusOf(pid); strings.HasPrefix(state, "t") || tracer != "0" {
				t.Fatalf("app pid %s left state %q tracer %q", pid, state, tracer)
			}
			pods := env.Kubectl(t, "get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}")
			if strings.TrimSpace(pods) != "my-broken-pod" {
				t.Fatalf("pods left in %s: %q", ns, pods)
			}
		})
	}
}

// lineWith reports whether some line of s contains both a and b.
func lineWith(s, a, b string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, a) && strings.Contains(l, b) && strings.HasSuffix(l, "}") {
			return true
		}
	}
	return false
}
