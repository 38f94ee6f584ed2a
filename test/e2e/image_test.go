package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
)

var (
	defaultImageOnce sync.Once
	defaultImageRef  string
)

// releaseImage builds this tree's kdiag image the release way
// (cmd/kdiag-image, no Docker) under the default reference of the test's
// kdiag binary, ghcr.io/kdiag/kdiag:<its version>, and imports it into the
// cluster. It returns the reference.
func releaseImage(t *testing.T, env *harness.Env) string {
	t.Helper()
	defaultImageOnce.Do(func() {
		bin, _ := binaries(t)
		out, errOut, code := kdiag(t, env, "version", "-o", "json")
		var v struct{ Version string }
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" {
			t.Fatalf("kdiag version: exit %d\n%s\n%s", code, out, errOut)
		}
		ref := agent.Image(v.Version)
		root, _ := harness.RepoRoot()
		dir := t.TempDir()
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "kdiag-image"), ".")
		build.Dir = filepath.Join(root, "cmd/kdiag-image")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build cmd/kdiag-image: %v\n%s", err, b)
		}
		tar := filepath.Join(dir, "kdiag-image.tar")
		if b, err := exec.Command(filepath.Join(dir, "kdiag-image"), "-ref", ref, "-binary", bin, "-o", tar).CombinedOutput(); err != nil {
			t.Fatalf("kdiag-image: %v\n%s", err, b)
		}
		env.ImportTarball(t, tar)
		defaultImageRef = ref
	})
	if defaultImageRef == "" {
		t.Fatal("the release image could not be built")
	}
	return defaultImageRef
}

// eventMessages returns the messages of the events in ns.
func eventMessages(t *testing.T, env *harness.Env, ns string) string {
	return env.Kubectl(t, "get", "events", "-n", ns, "-o", "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}")
}

// TestDefaultImages runs what uses kdiag's default images with no image
// named anywhere: the seed runbook in agent mode (the agent pod runs
// ghcr.io/kdiag/kdiag:<version>, built by cmd/kdiag-image; the ephemeral
// debug container runs busybox:1.36.1, kube.DefaultDebugImage, which the
// test cluster holds under that reference), and a Job-executor run whose
// Job image is the one kdiag serve defaults to.
func TestDefaultImages(t *testing.T) {
	env := seedCluster(t)
	ref := releaseImage(t, env)

	ns := namespace(t, env, "defimg")
	applyIn(t, env, "examples/broken-pod/manifests.yaml", "default", ns)
	waitRunningNotReady(t, env, ns, "my-broken-pod")
	rec := filepath.Join(t.TempDir(), "run.jsonl")
	out, errOut, code := kdiag(t, env, "run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-p", "namespace="+ns,
		"-p", "fix=false", "-p", "trace=2s", "--node-mode=agent", "--yes", "--record", rec)
	if code != 0 || !strings.Contains(out, "ConfigMap "+ns+"/myconfig key additional_file") {
		t.Fatalf("agent run with the default images: exit %d\n%s\n%s", code, out, errOut)
	}
	var attached bool
	for _, e := range readTranscript(t, rec).Events {
		if e.Type != transcript.TypeCall || e.Builtin != "attach_ephemeral" {
			continue
		}
		var res kube.EphemeralResult
		if e.Error != nil || json.Unmarshal(e.Result, &res) != nil || res.Image != kube.DefaultDebugImage {
			t.Fatalf("attach_ephemeral: error %v result %s; want the default image %s", e.Error, e.Result, kube.DefaultDebugImage)
		}
		attached = true
	}
	if !attached {
		t.Fatal("the run attached no ephemeral container")
	}
	events := eventMessages(t, env, ns)
	if !strings.Contains(events, "kdiag-agent-") || !strings.Contains(events, `image "`+ref+`"`) {
		t.Fatalf("no agent pod ran %s; events:\n%s", ref, events)
	}
	if !strings.Contains(events, `image "`+kube.DefaultDebugImage+`"`) {
		t.Fatalf("no debug container ran %s; events:\n%s", kube.DefaultDebugImage, events)
	}

	jobsNS := runnerNamespace(t, env, true)
	jobs := jobExecutor(t, env)
	s := startServer(t, env, waitYAML(fmt.Sprintf("executor: job\njob:\n  namespace: %s\n  termination_grace: 10s\n", jobsNS)),
		func(cfg *playbook.Config) playbook.Executor {
			cfg.Job.SetDefaultImage(ref) // what kdiag serve does with its own version
			return jobs(cfg)
		})
	id := postWait(t, s, "1s")
	if m := s.Wait(t, id, 3*time.Minute); m.Status != playbook.StatusOK {
		t.Fatalf("Job run with the default image: %s %q", m.Status, m.Message)
	}
	if events := eventMessages(t, env, jobsNS); !strings.Contains(events, `image "`+ref+`"`) {
		t.Fatalf("the Job's pod did not run %s; events:\n%s", ref, events)
	}
	noRunsLeft(t, env, jobsNS)
}
