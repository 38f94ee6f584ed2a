package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/test/harness"
	"k8s.io/client-go/tools/clientcmd"
)

// runKdiag runs the kdiag command line in this process.
func runKdiag(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(context.Background())
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestE2EConnectionFlags runs kdiag against the local cluster with
// kubectl's connection flags: --as a ServiceAccount that may do nothing
// gets the preflight's denial naming that ServiceAccount; --as-group adds a
// group the server then authorizes; --token with --server and
// --certificate-authority connects without any kubeconfig, as the
// ServiceAccount; --request-timeout bounds each request; --cluster and
// --user name kubeconfig entries.
func TestE2EConnectionFlags(t *testing.T) {
	env := harness.Cluster(t)
	ns := fmt.Sprintf("install-conn-%d", time.Now().UnixNano()%100000)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	env.Kubectl(t, "-n", ns, "create", "serviceaccount", "nobody")
	sa := "system:serviceaccount:" + ns + ":nobody"
	dir := t.TempDir()
	rb := filepath.Join(dir, "getpod.star")
	if err := os.WriteFile(rb, []byte(`runbook(name = "getpod", summary = "Gets a pod.", params = [param("pod", doc = "the pod")])
def main(p):
    verdict(get_pod(p.pod).phase)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := []string{"run", rb, "-p", "pod=no-such-pod", "--no-record", "-n", ns}
	denied := `rbac: the current user "` + sa + `" cannot "get" "pods" in namespace "` + ns + `"`

	_, _, err := runKdiag(append([]string{"--kubeconfig", env.Kubeconfig, "--as", sa}, run...)...)
	if err == nil || !strings.Contains(err.Error(), denied) {
		t.Errorf("--as %s: got %v, want the denial %q", sa, err, denied)
	}
	if k := engine.KindOf(err); k != engine.KindForbidden {
		t.Errorf("--as: error kind %q, want %q", k, engine.KindForbidden)
	}

	// The same ServiceAccount in the group system:masters may get pods:
	// the run gets as far as the (missing) pod.
	_, _, err = runKdiag(append([]string{"--kubeconfig", env.Kubeconfig, "--as", sa, "--as-group", "system:masters"}, run...)...)
	if err == nil || strings.Contains(err.Error(), "rbac:") || !strings.Contains(err.Error(), "no-such-pod") {
		t.Errorf("--as-group system:masters: got %v, want the pod not found", err)
	}

	// --token, --server and --certificate-authority alone: no kubeconfig.
	token := strings.TrimSpace(env.Kubectl(t, "-n", ns, "create", "token", "nobody"))
	admin, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	ca := cluster.CertificateAuthority
	if len(cluster.CertificateAuthorityData) > 0 {
		ca = filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(ca, cluster.CertificateAuthorityData, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-kubeconfig"))
	_, _, err = runKdiag(append([]string{"--server", cluster.Server, "--certificate-authority", ca, "--token", token}, run...)...)
	if err == nil || !strings.Contains(err.Error(), denied) {
		t.Errorf("--token: got %v, want the denial %q", err, denied)
	}
	if err != nil && strings.Contains(err.Error(), token) {
		t.Errorf("the error shows the token: %v", err)
	}
	// Without --server, the missing kubeconfig is a usage error.
	_, _, err = runKdiag(append([]string{"--token", token}, run...)...)
	var usage *engine.UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "no kubeconfig") {
		t.Errorf("--token without a kubeconfig or --server: got %v, want the usage error naming the missing kubeconfig", err)
	}

	// --request-timeout bounds every request (the TLS handshake alone takes longer).
	_, _, err = runKdiag(append([]string{"--server", cluster.Server, "--certificate-authority", ca, "--token", token, "--request-timeout", "1us"}, run...)...)
	if err == nil || !(strings.Contains(err.Error(), "Timeout") || strings.Contains(err.Error(), "deadline") || strings.Contains(err.Error(), "timed out")) {
		t.Errorf("--request-timeout 1us: got %v, want a timeout", err)
	}

	// --cluster and --user name kubeconfig entries.
	t.Setenv("KUBECONFIG", env.Kubeconfig)
	_, _, err = runKdiag(append([]string{"--cluster", "no-such-cluster"}, run...)...)
	if err == nil || !strings.Contains(err.Error(), "no-such-cluster") {
		t.Errorf("--cluster no-such-cluster: got %v, want it named", err)
	}
	_, _, err = runKdiag(append([]string{"--user", "no-such-user"}, run...)...)
	if err == nil || !strings.Contains(err.Error(), "no-such-user") {
		t.Errorf("--user no-such-user: got %v, want it named", err)
	}
}
