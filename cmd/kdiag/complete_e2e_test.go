package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
)

// TestE2ECompletion completes pod and namespace names from the local
// cluster: -p pod= lists the pods of -n (or of a namespace= param given
// before), -n lists namespaces.
func TestE2ECompletion(t *testing.T) {
	env := harness.Cluster(t)
	ns := fmt.Sprintf("install-compl-%d", time.Now().UnixNano()%100000)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	// A pod object is enough: completion lists names, nothing needs to run.
	for _, name := range []string{"web-0", "web-1", "db-0"} {
		env.Kubectl(t, "-n", ns, "run", name, "--image=busybox-local:v1", "--restart=Never", "--", "sleep", "3600")
	}
	rb := filepath.Join(t.TempDir(), "getpod.star")
	os.WriteFile(rb, []byte(`runbook(name = "getpod", summary = "Gets a pod.", params = [param("pod", doc = "the pod"), param("namespace", default = "default", doc = "its namespace")])
def main(p):
    verdict(get_pod(p.pod, namespace = p.namespace).phase)
`), 0o644)
	lines := func(args ...string) []string {
		t.Helper()
		out, _, err := runKdiag(append([]string{"__complete", "--kubeconfig", env.Kubeconfig}, args...)...)
		if err != nil {
			t.Fatalf("__complete %v: %v", args, err)
		}
		return strings.Split(strings.TrimSpace(out), "\n")
	}
	got := lines("run", rb, "-n", ns, "-p", "pod=web")
	if want := []string{"pod=web-0", "pod=web-1", ":4"}; !slices.Equal(got, want) {
		t.Errorf("-n %s -p pod=web<TAB>: %q, want %q", ns, got, want)
	}
	got = lines("run", rb, "-p", "namespace="+ns, "-p", "pod=")
	if want := []string{"pod=db-0", "pod=web-0", "pod=web-1", ":4"}; !slices.Equal(got, want) {
		t.Errorf("-p namespace=%s -p pod=<TAB>: %q, want %q", ns, got, want)
	}
	got = lines("run", rb, "-p", "namespace=install-compl")
	if !slices.Contains(got, "namespace="+ns) {
		t.Errorf("-p namespace=install-compl<TAB>: %q, want namespace=%s", got, ns)
	}
	got = lines("-n", "install-compl")
	if !slices.Contains(got, ns) || slices.Contains(got, "default") {
		t.Errorf("-n install-compl<TAB>: %q, want %s and no other prefix", got, ns)
	}
}
