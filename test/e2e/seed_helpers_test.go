package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds kdiag and the seed's broken app once per test process.
func binaries(t *testing.T) (kdiag, app string) {
	t.Helper()
	buildOnce.Do(func() {
		root, err := harness.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "kdiag-e2e-bin")
		if buildErr != nil {
			return
		}
		for pkg, out := range map[string]string{"./cmd/kdiag": "kdiag", "./examples/broken-pod/app": "broken-app"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg, string(b), err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "kdiag"), filepath.Join(binDir, "broken-app")
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

var imageOnce sync.Once

// seedCluster returns the cluster with the broken app's image imported.
func seedCluster(t *testing.T) *harness.Env {
	env := harness.Cluster(t)
	_, app := binaries(t)
	imageOnce.Do(func() { env.ImportImage(t, "kdiag-broken-app:v1", app) })
	return env
}

// namespace creates a fresh namespace, deleted when the test ends.
func namespace(t *testing.T, env *harness.Env, prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	ns := prefix + "-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	return ns
}

// applyIn applies a manifest file with its namespace replaced.
func applyIn(t *testing.T, env *harness.Env, file, fromNS, toNS string) {
	root, _ := harness.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	m := strings.ReplaceAll(string(b), "namespace: "+fromNS, "namespace: "+toNS)
	p := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(p, []byte(m), 0o644)
	env.Kubectl(t, "apply", "-f", p)
}

// waitRunningNotReady waits until every container has started and the
// pod's Ready condition is False.
func waitRunningNotReady(t *testing.T, env *harness.Env, ns, pod string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		out, _, _ := env.RunKubectl("get", "pod", pod, "-n", ns, "-o",
			`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[*].started}`)
		f := strings.Fields(out)
		if len(f) >= 3 && f[0] == "Running" && f[1] == "False" && !strings.Contains(out, "false") {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _, _ := env.RunKubectl("describe", "pod", pod, "-n", ns)
	t.Fatalf("pod %s/%s never got Running but not Ready:\n%s", ns, pod, out)
}

// podReady returns the pod's Ready condition status.
func podReady(env *harness.Env, ns, pod string) string {
	out, _, _ := env.RunKubectl("get", "pod", pod, "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	return strings.TrimSpace(out)
}

// kdiag runs the kdiag binary against the cluster and returns its
// stdout, stderr and exit code.
func kdiag(t *testing.T, env *harness.Env, args ...string) (string, string, int) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "CONTAINER_RUNTIME_ENDPOINT="+env.RuntimeEndpoint)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// readTranscript reads a complete transcript.
func readTranscript(t *testing.T, path string) *transcript.Transcript {
	t.Helper()
	tr, err := transcript.ReadFile(path)
	if err != nil {
		t.Fatalf("transcript %s: %v", path, err)
	}
	return tr
}
