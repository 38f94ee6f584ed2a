package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
	corev1 "k8s.io/api/core/v1"
)

// libraryApply applies manifest files of the repository (paths relative to
// its root, without namespaces) in namespace ns.
func libraryApply(t *testing.T, env *harness.Env, ns string, files ...string) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"apply", "-n", ns}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(root, f))
	}
	env.Kubectl(t, args...)
}

// libraryPod reads a pod.
func libraryPod(env *harness.Env, ns, name string) (*corev1.Pod, error) {
	out, errOut, err := env.RunKubectl("get", "pod", name, "-n", ns, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, errOut)
	}
	var p corev1.Pod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// libraryWait polls the pod until cond holds, failing the test with the
// pod's description after timeout.
func libraryWait(t *testing.T, env *harness.Env, ns, name, what string, timeout time.Duration, cond func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p, err := libraryPod(env, ns, name); err == nil && cond(p) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _, _ := env.RunKubectl("describe", "pod", name, "-n", ns)
	t.Fatalf("pod %s/%s: %s did not happen within %s:\n%s", ns, name, what, timeout, out)
}

// libraryStatus returns the status of the pod's container named name.
func libraryStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// libraryRunning reports whether every container of the pod runs.
func libraryRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return true
}

// libraryWaiting returns a condition: the container waits for one of reasons.
func libraryWaiting(container string, reasons ...string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		s := libraryStatus(p, container)
		if s == nil || s.State.Waiting == nil {
			return false
		}
		for _, r := range reasons {
			if s.State.Waiting.Reason == r {
				return true
			}
		}
		return false
	}
}

// libraryUnschedulable is the condition of a pod the scheduler gave up on.
func libraryUnschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// libraryResult is a finished run of a library runbook.
type libraryResult struct {
	out        string
	verdict    string
	findings   []string // "SEVERITY summary"
	transcript string
	took       time.Duration
}

// text returns the verdict and the findings, one a line.
func (r *libraryResult) text() string {
	return "verdict: " + r.verdict + "\n" + strings.Join(r.findings, "\n")
}

// mustSay fails the test unless every string occurs in the verdict or a finding.
func (r *libraryResult) mustSay(t *testing.T, want ...string) {
	t.Helper()
	all := r.text()
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("the run does not say %q:\n%s", w, all)
		}
	}
}

// verdictSays fails the test unless every string occurs in the verdict.
func (r *libraryResult) verdictSays(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.verdict, w) {
			t.Errorf("the verdict does not say %q:\n%s", w, r.verdict)
		}
	}
}

// libraryRun runs a runbook of the built-in library with params ("k=v"),
// recording it; it fails the test unless the run ends ok and its recording
// replays to the same report with no cluster.
func libraryRun(t *testing.T, env *harness.Env, runbook string, params ...string) *libraryResult {
	t.Helper()
	tp := filepath.Join(t.TempDir(), runbook+".jsonl")
	args := []string{"run", runbook, "--record", tp}
	for _, p := range params {
		if strings.HasPrefix(p, "--") {
			args = append(args, p)
			continue
		}
		args = append(args, "-p", p)
	}
	start := time.Now()
	out, errOut, code := kdiag(t, env, args...)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("kdiag %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	tr := readTranscript(t, tp)
	if tr.Footer == nil || tr.Footer.Status != transcript.StatusOK {
		t.Fatalf("kdiag %s: footer %+v", strings.Join(args, " "), tr.Footer)
	}
	res := &libraryResult{out: out, transcript: tp, took: took}
	for _, e := range tr.Events {
		switch e.Type {
		case "finding":
			res.findings = append(res.findings, strings.ToUpper(e.Severity)+" "+e.Summary)
		case "verdict":
			res.verdict = e.Summary
		case "call":
			if e.DurationMS > 2000 && e.Builtin != "sleep" && e.Builtin != "strace_sample" {
				t.Logf("%s: slow call %s(%s): %.1fs", runbook, e.Builtin, e.Args, e.DurationMS/1000)
			}
		}
	}
	rep, repErr, code := kdiag(t, env, "replay", "-q", "--kubeconfig", "/nonexistent", tp)
	if code != 0 || rep != out {
		t.Fatalf("replay of %s: exit %d, the report differs:\n%s\n%s\n--- live\n%s", runbook, code, rep, repErr, out)
	}
	t.Logf("%s %s: %s (%s)", runbook, strings.Join(params, " "), res.verdict, took.Round(10*time.Millisecond))
	libraryKeep(t, runbook, tp)
	return res
}

// exampleApps are the example apps built and imported by this test process.
var exampleApps sync.Map // image -> *exampleApp

type exampleApp struct {
	once sync.Once
	err  error
}

// importExampleApp builds the Go package pkg of the repository (an
// example's app) and imports it into the cluster as image, once per test
// process.
func importExampleApp(t *testing.T, env *harness.Env, pkg, image string) {
	t.Helper()
	v, _ := exampleApps.LoadOrStore(image, &exampleApp{})
	a := v.(*exampleApp)
	a.once.Do(func() {
		root, err := harness.RepoRoot()
		if err != nil {
			a.err = err
			return
		}
		bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			a.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			return
		}
		env.ImportImage(t, image, bin)
	})
	if a.err != nil {
		t.Fatal(a.err)
	}
}

// libraryConfigApp builds the config-file-missing example's app and imports
// it as kdiag-config-app:v1, once per test process.
func libraryConfigApp(t *testing.T, env *harness.Env) {
	t.Helper()
	importExampleApp(t, env, "./examples/config-file-missing/app", "kdiag-config-app:v1")
}

// libraryPodOf waits up to a minute for a pod matching the label selector
// and returns its name (the newest one's).
func libraryPodOf(t *testing.T, env *harness.Env, ns, selector string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _, err := env.RunKubectl("get", "pods", "-n", ns, "-l", selector, "--sort-by=.metadata.creationTimestamp", "-o", "jsonpath={.items[*].metadata.name}")
		if names := strings.Fields(out); err == nil && len(names) > 0 {
			return names[len(names)-1]
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no pod matches %s in %s", selector, ns)
	return ""
}

// libraryKeep copies a run's transcript to $KDIAG_LIBRARY_RECORD/RUNBOOK/
// (named after the test and the run's number in it) when that variable is
// set: how the recordings under runbooks/testdata are made.
func libraryKeep(t *testing.T, runbook, transcriptPath string) {
	t.Helper()
	dir := os.Getenv("KDIAG_LIBRARY_RECORD")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(transcriptPath)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, runbook)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		p := filepath.Join(out, fmt.Sprintf("%s-%d.jsonl", strings.ReplaceAll(t.Name(), "/", "_"), i))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recording kept: %s", p)
		return
	}
}

// libraryRunningPodOf waits up to a minute for a Running pod matching the
// label selector and returns its name.
func libraryRunningPodOf(t *testing.T, env *harness.Env, ns, selector string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, _, err := env.RunKubectl("get", "pods", "-n", ns, "-l", selector, "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
		if names := strings.Fields(out); err == nil && len(names) > 0 {
			return names[0]
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no Running pod matches %s in %s", selector, ns)
	return ""
}
