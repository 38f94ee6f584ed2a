//go:build nodes

// Package nodes runs kdiag on a cluster of two nodes: the local cluster
// plus kdiag-node2 (test/cluster/node2.sh: its own containerd and kubelet
// on this host, tainted so that only pods asking for it run there). The
// second node changes what the scheduler and every node-listing test
// see, so these tests run alone (`make test-serial`, part of `make
// test`): TestMain brings node 2 up and takes it down again.
package nodes

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

const node2 = "kdiag-node2"

// node2Endpoint is the CRI socket of node 2's containerd.
var node2Endpoint = "unix:///tmp/kdiag-node2/run/containerd/containerd.sock"

func script() string {
	root, err := harness.RepoRoot()
	if err != nil {
		panic(err)
	}
	return filepath.Join(root, harness.ClusterScript)
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv("KDIAG_E2E") == "0" {
		fmt.Println("the two-node tests need root and the local cluster")
		os.Exit(m.Run())
	}
	if out, err := exec.Command("bash", script(), "all").CombinedOutput(); err != nil {
		fmt.Printf("cluster.sh all: %v\n%s", err, out)
		os.Exit(1)
	}
	t0 := time.Now()
	if out, err := exec.Command("bash", script(), "node2", "up").CombinedOutput(); err != nil {
		fmt.Printf("cluster.sh node2 up: %v\n%s", err, out)
		exec.Command("bash", script(), "node2", "down").Run()
		os.Exit(1)
	}
	fmt.Printf("node 2 up after %s\n", time.Since(t0).Round(100*time.Millisecond))
	code := m.Run()
	if out, err := exec.Command("bash", script(), "node2", "down").CombinedOutput(); err != nil {
		fmt.Printf("cluster.sh node2 down: %v\n%s", err, out)
		code = 1
	}
	os.Exit(code)
}

// build builds kdiag and the seed's broken app.
func build(t *testing.T) (kdiag, app string) {
	t.Helper()
	root, _ := harness.RepoRoot()
	dir := t.TempDir()
	for pkg, out := range map[string]string{"./cmd/kdiag": "kdiag", "./examples/broken-pod/app": "broken-app"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return filepath.Join(dir, "kdiag"), filepath.Join(dir, "broken-app")
}

// seedOnNode2 starts the seed's broken pod pinned to node 2 in a fresh
// namespace (named prefix-RANDOM) and waits until it runs but is not ready.
func seedOnNode2(t *testing.T, env *harness.Env, app, prefix string) string {
	t.Helper()
	env.ImportImage(t, "kdiag-broken-app:v1", app) // imported into node 2 too
	b := make([]byte, 3)
	rand.Read(b)
	ns := prefix + "-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	root, _ := harness.RepoRoot()
	m, err := os.ReadFile(filepath.Join(root, "examples/broken-pod/manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := strings.ReplaceAll(string(m), "namespace: default", "namespace: "+ns)
	p := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(p, []byte(y), 0o644)
	env.Kubectl(t, "apply", "-f", p)
	// Pin the pod to node 2: recreate it with nodeName and the taint's toleration.
	var pod map[string]any
	if err := json.Unmarshal([]byte(env.Kubectl(t, "get", "pod", "my-broken-pod", "-n", ns, "-o", "json")), &pod); err != nil {
		t.Fatal(err)
	}
	spec := pod["spec"].(map[string]any)
	spec["nodeName"] = node2
	spec["tolerations"] = []any{map[string]any{"key": "kdiag.io/node2", "operator": "Exists", "effect": "NoSchedule"}}
	delete(pod, "status")
	meta := pod["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields"} {
		delete(meta, k)
	}
	env.Kubectl(t, "delete", "pod", "my-broken-pod", "-n", ns, "--wait=true")
	b2, _ := json.Marshal(pod)
	os.WriteFile(p, b2, 0o644)
	env.Kubectl(t, "create", "-f", p)
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		out, _, _ := env.RunKubectl("get", "pod", "my-broken-pod", "-n", ns, "-o",
			`jsonpath={.spec.nodeName} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}`)
		if strings.TrimSpace(out) == node2+" Running False" {
			return ns
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _, _ := env.RunKubectl("describe", "pod", "my-broken-pod", "-n", ns)
	t.Fatalf("my-broken-pod never ran on %s:\n%s", node2, out)
	return ""
}

// TestSeedOnSecondNode diagnoses the seed incident's pod on node 2 from
// this host, with kdiag's own runtime endpoint set to node 1's (as on an
// engineer's laptop, it describes kdiag's machine, not the pod's node):
//   - local, naming node 2's runtime with --runtime-endpoint;
//   - auto: kdiag reads node 2's kubelet configuration (configz), sees
//     that node 2 is this machine, and asks node 2's runtime here;
//   - agent: the agent pod on node 2 mounts and asks node 2's runtime.
//
// Each time the verdict names the ConfigMap key, find_pid says where it ran
// and which runtime it asked, and the recording replays.
func TestSeedOnSecondNode(t *testing.T) {
	env := harness.Cluster(t)
	kdiag, app := build(t)
	env.ImportImage(t, "kdiag-local:v1", kdiag) // the agent's image, on both nodes
	ns := seedOnNode2(t, env, app, "nodes")
	for _, c := range []struct {
		name  string
		args  []string
		where string
	}{
		{"local", []string{"--node-mode", "local", "--runtime-endpoint", node2Endpoint}, "this machine"},
		{"auto", []string{"--node-mode", "auto"}, "this machine, which is node " + node2},
		{"agent", []string{"--node-mode", "agent"}, "an agent pod on node " + node2},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := filepath.Join(t.TempDir(), "run.jsonl")
			args := append([]string{"run", "readiness-probe-failing", "-p", "pod=my-broken-pod", "-n", ns,
				"-p", "fix=false", "-p", "ephemeral=false", "--record", tp}, c.args...)
			cmd := exec.Command(kdiag, args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "CONTAINER_RUNTIME_ENDPOINT="+env.RuntimeEndpoint)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("kdiag run: %v\n%s\n%s", err, out.String(), errb.String())
			}
			tr, err := transcript.ReadFile(tp)
			if err != nil {
				t.Fatal(err)
			}
			var found struct {
				Endpoint, Source, Where string
				EndpointFrom            string `json:"endpoint_from"`
			}
			var verdict string
			for _, e := range tr.Events {
				if e.Type == transcript.TypeCall && e.Builtin == "find_pid" && e.Error == nil {
					json.Unmarshal(e.Result, &found)
				}
				if e.Type == transcript.TypeVerdict {
					verdict = e.Summary
				}
			}
			if found.Endpoint != node2Endpoint || !strings.HasPrefix(found.Where, c.where) {
				t.Errorf("find_pid asked %q (%s) from %q; want node 2's runtime %s from %q", found.Endpoint, found.Source, found.Where, node2Endpoint, c.where)
			}
			if c.name != "local" && found.EndpointFrom != "the kubelet configuration of node "+node2 {
				t.Errorf("the endpoint came from %q; want node 2's kubelet configuration", found.EndpointFrom)
			}
			if !strings.Contains(verdict, "key additional_file") {
				t.Errorf("verdict %q; want the ConfigMap key named\n%s", verdict, out.String())
			}
			if dir := os.Getenv("KDIAG_E2E_RECORDINGS"); dir != "" {
				b, _ := os.ReadFile(tp)
				os.WriteFile(filepath.Join(dir, "seed-on-node2-"+c.name+".jsonl"), b, 0o644)
			}
			rep := exec.Command(kdiag, "replay", "-q", "--kubeconfig", "/nonexistent", tp)
			if b, err := rep.CombinedOutput(); err != nil {
				t.Fatalf("replay: %v\n%s", err, b)
			}
			if out := env.Kubectl(t, "get", "pods", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "pod/my-broken-pod" {
				t.Errorf("left behind in %s: %s", ns, out)
			}
		})
	}
}
