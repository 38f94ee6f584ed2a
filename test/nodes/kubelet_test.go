//go:build nodes

package nodes

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// TestNode2KubeletFrozen: with node 2's kubelet stopped (SIGSTOP), the
// seed runbook in agent mode for the pod on node 2 ends well before its
// --timeout, its transcript complete, with a verdict that says what could
// not be checked and an error that names node 2; once the kubelet
// resumes, no agent pod is left.
func TestNode2KubeletFrozen(t *testing.T) {
	env := harness.Cluster(t)
	kdiagBin, app := build(t)
	env.ImportImage(t, "kdiag-local:nodes", kdiagBin)
	ns := seedOnNode2(t, env, app, "nodes-kubelet")

	b, err := os.ReadFile("/tmp/kdiag-node2/run/pids/kubelet.pid")
	if err != nil {
		t.Fatalf("node 2's kubelet: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			syscall.Kill(pid, syscall.SIGCONT)
			thawed = true
		}
	}
	t.Cleanup(thaw)
	timer := time.AfterFunc(4*time.Minute, thaw)
	defer timer.Stop()

	rec := filepath.Join(t.TempDir(), "run.jsonl")
	cmd := exec.Command(kdiagBin, "run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace="+ns,
		"-p", "fix=false", "-p", "ephemeral=false", "--node-mode=agent", "--agent-image", "kdiag-local:nodes", "--timeout", "3m", "--record", rec)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
	t0 := time.Now()
	out, _ := cmd.CombinedOutput()
	took := time.Since(t0)
	thaw()
	t.Logf("exit %d after %s:\n%s", cmd.ProcessState.ExitCode(), took.Round(100*time.Millisecond), out)
	if took > 170*time.Second {
		t.Errorf("the run took %s with node 2's kubelet stopped; want it to end before its 3m --timeout", took)
	}
	tr, err := transcript.ReadFile(rec)
	if err != nil {
		t.Fatalf("the transcript is not complete: %v", err)
	}
	var named bool
	verdict := ""
	for _, e := range tr.Events {
		if e.Type == transcript.TypeVerdict {
			verdict = e.Summary
		}
		if e.Type == transcript.TypeCall && e.Error != nil && strings.Contains(e.Error.Message, node2) {
			named = true
		}
	}
	if !named || !strings.Contains(string(out), "the kubelet on node "+node2+" never reported on it") {
		t.Errorf("no error names %s's kubelet:\n%s", node2, out)
	}
	if cmd.ProcessState.ExitCode() != 0 || !strings.Contains(verdict, "not checked: ") {
		t.Errorf("exit %d, verdict %q; want a degraded verdict naming what was not checked", cmd.ProcessState.ExitCode(), verdict)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		left, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "kdiag.io/role=agent", "-o", "name")
		if strings.TrimSpace(left) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent pods left after node 2's kubelet resumed: %s", left)
		}
		time.Sleep(time.Second)
	}
}
