//go:build faults

package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
)

// TestFaultServeJobKilled: kdiag serve's Job executor runs wait-and-log
// (20 s) in a Job; once the Job's pod runs, a component of killCases (the
// API server, etcd, the kubelet, containerd) is killed with SIGKILL and
// started again 4 s later. The run ends, ok with its verdict or failed
// with an error naming the component; it is stored with its transcript
// (a run whose transcript is not complete says so); no Job, pod or
// frame-key Secret of the run is left.
func TestFaultServeJobKilled(t *testing.T) {
	for _, c := range killCases {
		t.Run(c.component, func(t *testing.T) { serveJobKill(t, c.component, c.down, c.names) })
	}
}

func serveJobKill(t *testing.T, component string, down time.Duration, names []string) {
	env := harness.Cluster(t)
	sj := startServeJob(t, env, "20s", "")
	sj.waitPhase(t, "Running")
	k := kill(t, env, component)
	time.Sleep(down)
	k.Start(t)
	m := sj.s.Wait(t, sj.run, 3*time.Minute)
	took := time.Since(k.killed)
	t.Logf("FIGURES serve Job run, %s killed, started again after %s, cluster healthy %s later: run %s %q verdict %q damaged %q, ended %s after the kill",
		component, down, k.Recovery.Round(100*time.Millisecond), m.Status, m.Message, m.Verdict, m.Damaged, took.Round(100*time.Millisecond))
	named := false
	for _, n := range names {
		named = named || strings.Contains(m.Message, n)
	}
	switch {
	case m.Status == playbook.StatusOK && strings.HasPrefix(m.Verdict, "waited 20s"):
	case m.Status == playbook.StatusFailed && named:
	default:
		t.Errorf("run after %s was killed: %s %q verdict %q; want ok with its verdict, or failed naming %s (one of %q)", component, m.Status, m.Message, m.Verdict, component, names)
	}
	code, _, body := sj.s.Get(t, "/runs/"+sj.run+"/transcript", "")
	if code != 200 || len(body) == 0 {
		t.Errorf("the run's transcript: %d, %d bytes; want it stored", code, len(body))
	}
	sj.noneLeft(t, 3*time.Minute) // a killed API server: the Job's pod is the garbage collector's to delete, and it resyncs first
}
