package kube

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// benchPair times kdiag's way and kubectl's way of doing the same thing,
// alternately, and reports both and their ratio.
func benchPair(b *testing.B, kdiag func(i int) error, kubectl func(i int) error) {
	var tk, tc time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := kdiag(i); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := kubectl(i); err != nil {
			b.Fatal(err)
		}
		tk += t1.Sub(t0)
		tc += time.Since(t1)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tk.Microseconds())/1000/n, "kdiag-ms/op")
	b.ReportMetric(float64(tc.Microseconds())/1000/n, "kubectl-ms/op")
	b.ReportMetric(float64(tc)/float64(tk), "kubectl/kdiag")
}

func (e *e2e) kubectlCmd(args ...string) func(int) error {
	return func(i int) error {
		var a []string
		for _, x := range args {
			if strings.Contains(x, "%d") {
				x = fmt.Sprintf(x, i)
			}
			a = append(a, x)
		}
		cmd := exec.Command(e.env.KubectlPath(), append([]string{"--kubeconfig", e.env.Kubeconfig, "-n", e.ns}, a...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %v: %v\n%s", a, err, out)
		}
		return nil
	}
}

// BenchmarkExec compares exec(pod, ["true"]) with kubectl exec.
func BenchmarkExec(b *testing.B) {
	e := newE2E(b)
	e.apply(sleeper("web", "3600"))
	e.waitReady("web")
	benchPair(b, func(int) error {
		v, err := e.run("exec", engine.Args{"pod": "web", "command": []any{"true"}}, "")
		if err == nil && !v.(ExecResult).OK {
			err = fmt.Errorf("exec: %+v", v)
		}
		return err
	}, e.kubectlCmd("exec", "web", "--", "true"))
}

// BenchmarkAttachEphemeral compares attach_ephemeral (add and wait until
// started) with kubectl debug --target -i, which also waits for the
// container (and then reads its log, as it has already exited).
func BenchmarkAttachEphemeral(b *testing.B) {
	e := newE2E(b)
	e.apply(sleeper("web", "3600"))
	e.waitReady("web")
	benchPair(b, func(int) error {
		_, err := e.run("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1",
			"image_pull_policy": "Never", "command": []any{"true"}}, "")
		return err
	}, e.kubectlCmd("debug", "web", "--target=app", "--image=busybox-local:v1", "--image-pull-policy=Never",
		"--container=dbg-%d", "-i", "--quiet", "--", "true"))
}
