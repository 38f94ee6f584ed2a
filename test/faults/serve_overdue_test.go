//go:build faults

package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
)

// TestFaultServeJobOverdue: the kubelet or containerd is frozen as kdiag
// serve's Job executor creates a run's Job, longer than the Job's deadline
// (active_deadline 25s), so the pod never starts. The run ends failed at
// the deadline with an error that names the sick component on the pod's
// node (the kubelet, whose lease goes stale; the runtime, with the kubelet
// alive); once the component resumes, no Job, pod or Secret is left.
func TestFaultServeJobOverdue(t *testing.T) {
	for _, c := range []struct{ component, want string }{
		{"kubelet", "the kubelet on node "},
		{"containerd", "the container runtime on node "},
	} {
		t.Run(c.component, func(t *testing.T) {
			env := harness.Cluster(t)
			const deadline = 25 * time.Second
			sj := newServeJob(t, env, "5s", ", active_deadline: "+deadline.String())
			thaw := freeze(t, env, c.component, 3*time.Minute)
			frozeAt := time.Now()
			sj.alert(t)
			m := sj.s.Wait(t, sj.run, 2*time.Minute)
			took := time.Since(frozeAt)
			thaw()
			t.Logf("FIGURES serve Job run, %s frozen past the Job's deadline %s: run %s %q, ended %s after the freeze", c.component, deadline, m.Status, m.Message, took.Round(100*time.Millisecond))
			if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "exceeded its deadline") || !strings.Contains(m.Message, c.want+env.NodeName) {
				t.Errorf("run: %s %q; want failed at the deadline, naming %s%s", m.Status, m.Message, c.want, env.NodeName)
			}
			if took > deadline+40*time.Second {
				t.Errorf("the run ended %s after the freeze; want about the Job's deadline %s", took, deadline)
			}
			sj.noneLeft(t, 90*time.Second)
		})
	}
}

// TestFaultServeJobOverdueAPIServer: the API server is frozen while a
// serve Job run's pod runs, until well past the Job's deadline
// (active_deadline 20s), so no one marks the Job failed. The follower
// ends the run 30 s past the deadline, naming the API server; the run is
// stored failed, its transcript as far as it came (marked as ending
// without its footer); once the API server resumes, no Job, pod or Secret
// is left.
func TestFaultServeJobOverdueAPIServer(t *testing.T) {
	env := harness.Cluster(t)
	sj := startServeJob(t, env, "60s", ", active_deadline: 20s")
	sj.waitPhase(t, "Running")
	freeze(t, env, "kube-apiserver", 70*time.Second)
	frozeAt := time.Now()
	m := sj.s.Wait(t, sj.run, 3*time.Minute)
	t.Logf("FIGURES serve Job run, kube-apiserver frozen past the Job's deadline 20s: run %s %q, ended %s after the freeze", m.Status, m.Message, time.Since(frozeAt).Round(100*time.Millisecond))
	if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "past its deadline (activeDeadlineSeconds 20) and not marked failed") || !strings.Contains(m.Message, "the API server did not answer") {
		t.Errorf("run: %s %q; want failed past the deadline, naming the API server", m.Status, m.Message)
	}
	sj.noneLeft(t, 90*time.Second)
}
