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
