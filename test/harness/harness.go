// Package harness gives kdiag's end-to-end tests a real single-node Kubernetes cluster.
//
// The cluster is managed by test/cluster/cluster.sh (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, containerd + runc, bridge CNI) and runs as root on the test machine.
// Cluster brings it up once per test process (building the binaries on first use) and returns
// an *Env describing it:
//
//	func TestSomething(t *testing.T) {
//		env := harness.Cluster(t)
//		env.Kubectl(t, "run", "x", "--image=busybox-local:v1", "--restart=Never",
//			"--overrides", `{"spec":{"nodeName":"`+env.NodeName+`"}}`, "--", "sleep", "3600")
//	}
//
// Images available without import: busybox-local:v1, httpserver-local:v1 (HTTP on :8080, / and
// /healthz) and the sandbox image registry.k8s.io/pause:3.10; add more with Env.ImportImage.
// Nothing can be pulled: always use a tag other than "latest".
//
// The first cold build takes 12-30 minutes on 2 cores, longer than go test's default 10-minute
// timeout: run `test/cluster/cluster.sh all` before `go test`, or raise -timeout.
//
// Set KDIAG_E2E=0 to skip every test that calls Cluster; otherwise a test that cannot get a
// cluster (for example because it is not running as root) fails rather than being skipped.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModulePath is the module path that identifies the repository root (its go.mod).
const ModulePath = "github.com/kdiag/kdiag"

// ClusterScript is the cluster management script, relative to the repository root.
const ClusterScript = "test/cluster/cluster.sh"

// Env describes the running test cluster.
type Env struct {
	// Kubeconfig is the path of an admin (system:masters) kubeconfig for the cluster.
	Kubeconfig string
	// RuntimeEndpoint is the CRI endpoint of the node's containerd, e.g.
	// "unix:///tmp/kdc/containerd/containerd.sock" (for crictl: --runtime-endpoint).
	RuntimeEndpoint string
	// NodeName is the name of the cluster's only node ("kdiag-node"); pin pods to it with
	// spec.nodeName or the kubernetes.io/hostname label.
	NodeName string
	// BinDir holds the cluster's binaries, including kubectl and crictl of matching versions.
	BinDir string
	// StateDir is the cluster's runtime state directory (logs in StateDir/logs).
	StateDir string

	script string // absolute path of cluster.sh
}

var (
	setupMu   sync.Mutex
	setupDone bool
	setupEnv  *Env
	setupErr  error
)

// Cluster returns the test cluster, bringing it up first if needed (`cluster.sh all`, run at most
// once per test process; concurrent test processes are serialized by the script's lock).
// It calls t.Skip("KDIAG_E2E=0") when KDIAG_E2E=0 is set, and t.Fatalf when the process is not
// root or the cluster cannot be brought up.
func Cluster(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("KDIAG_E2E") == "0" {
		t.Skip("KDIAG_E2E=0")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("harness: the kdiag e2e cluster needs root (it runs containerd, kubelet, bridges, mounts); "+
			"run the tests as root, or set KDIAG_E2E=0 to skip e2e tests (euid %d)", os.Geteuid())
	}
	setupMu.Lock()
	defer setupMu.Unlock()
	if !setupDone {
		setupEnv, setupErr = setup(t)
		setupDone = true
	}
	if setupErr != nil {
		t.Fatalf("harness: %v", setupErr)
	}
	e := *setupEnv
	return &e
}

// setup finds the repository, runs `cluster.sh all` and reads the cluster's description.
func setup(t testing.TB) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, ClusterScript)
	if _, err := os.Stat(script); err != nil {
		return nil, err
	}
	if d, ok := deadline(t); ok && time.Until(d) < 30*time.Minute {
		if exec.Command("bash", script, "is-built").Run() != nil {
			return nil, fmt.Errorf("the cluster binaries are not built yet and the cold build takes 12-30 min, "+
				"but this test binary times out in %s: run `%s all` first (or `make cluster-up`), "+
				"or use go test -timeout 60m", time.Until(d).Round(time.Second), script)
		}
	}
	start := time.Now()
	t.Logf("harness: %s all (first run builds Kubernetes: 12-30 min)", script)
	tail := &tailBuffer{max: 16 << 10}
	cmd := exec.Command("bash", script, "all")
	cmd.Stdout = io.MultiWriter(os.Stderr, tail)
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s all failed after %s: %v\n--- output (tail) ---\n%s",
			script, time.Since(start).Round(time.Second), err, tail.String())
	}
	t.Logf("harness: cluster ready after %s", time.Since(start).Round(time.Second))

	out, err := exec.Command("bash", script, "env", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("%s env --json: %v", script, err)
	}
	var j struct {
		Kubeconfig      string `json:"kubeconfig"`
		RuntimeEndpoint string `json:"runtimeEndpoint"`
		NodeName        string `json:"nodeName"`
		BinDir          string `json:"binDir"`
		StateDir        string `json:"stateDir"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return nil, fmt.Errorf("%s env --json: %v (output %q)", script, err, out)
	}
	return &Env{
		Kubeconfig:      j.Kubeconfig,
		RuntimeEndpoint: j.RuntimeEndpoint,
		NodeName:        j.NodeName,
		BinDir:          j.BinDir,
		StateDir:        j.StateDir,
		script:          script,
	}, nil
}

// deadline returns the test binary's deadline if t provides one (*testing.T does).
func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// RepoRoot returns the kdiag repository root: the nearest directory at or above the working
// directory whose go.mod declares module github.com/kdiag/kdiag.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: no go.mod with module " + ModulePath + " at or above the working directory")
		}
		dir = parent
	}
}

// modulePath returns the module path declared in the go.mod file at path ("" if none).
func modulePath(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`+"`")
		}
	}
	return ""
}

// KubectlPath returns the kubectl binary to use: the cluster's own (same version as the
// server) if present, else whatever "kubectl" is on PATH.
func (e *Env) KubectlPath() string {
	p := filepath.Join(e.BinDir, "kubectl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "kubectl"
}

// RunKubectl runs kubectl with the cluster's kubeconfig and returns its stdout and stderr; a
// non-zero exit is returned as an error. Use it when failure is an expected outcome.
func (e *Env) RunKubectl(args ...string) (stdout, stderr string, err error) {
	var o, se bytes.Buffer
	cmd := exec.Command(e.KubectlPath(), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.String(), se.String(), err
}

// Kubectl runs kubectl with the cluster's kubeconfig and returns its stdout; it fails the test
// (t.Fatalf, with stderr) if kubectl exits non-zero. Pass "-n", NAMESPACE as needed; the default
// namespace is "default".
func (e *Env) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := e.RunKubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// ImportImage builds an image named name (NAME:TAG, the tag must not be "latest") holding only
// the statically linked binary at binaryPath, installed as /<base name of binaryPath> and used
// as the entrypoint, and imports it into the node's containerd so pods can use it (it is never
// pulled). Build Go binaries with CGO_ENABLED=0. Importing the same name again replaces it.
// Imported images last until the cluster is taken down.
func (e *Env) ImportImage(t testing.TB, name, binaryPath string) {
	t.Helper()
	abs, err := filepath.Abs(binaryPath)
	if err != nil {
		t.Fatalf("ImportImage %s: %v", name, err)
	}
	out, err := exec.Command("bash", e.script, "image", name, abs).CombinedOutput()
	if err != nil {
		t.Fatalf("ImportImage %s from %s: %v\n%s", name, binaryPath, err, out)
	}
}

// ImportTarball imports an image tarball (docker save or OCI, e.g. what
// cmd/kdiag-image writes) into the cluster's nodes under the reference it
// names; a node 2 brought up later imports it too.
func (e *Env) ImportTarball(t testing.TB, path string) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("ImportTarball %s: %v", path, err)
	}
	if out, err := exec.Command("bash", e.script, "import-tar", abs).CombinedOutput(); err != nil {
		t.Fatalf("ImportTarball %s: %v\n%s", path, err, out)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// Write appends p, dropping the oldest bytes beyond max.
func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

// String returns the kept bytes.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
