package harness_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
)

// TestClusterNodeReady checks that the harness yields a cluster whose node is Ready.
func TestClusterNodeReady(t *testing.T) {
	env := harness.Cluster(t)
	got := env.Kubectl(t, "get", "node", env.NodeName,
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if got != "True" {
		t.Fatalf("node %s Ready = %q, want True", env.NodeName, got)
	}
	if _, _, err := env.RunKubectl("get", "pod", "does-not-exist"); err == nil {
		t.Fatal("RunKubectl: want an error for a missing pod")
	}
}

// TestImportImage imports Debian's static busybox as a one-binary image and runs it on the node.
func TestImportImage(t *testing.T) {
	env := harness.Cluster(t)
	env.ImportImage(t, "harness-selftest:v1", "/bin/busybox")
	const pod = "harness-selftest"
	env.RunKubectl("delete", "pod", pod, "--ignore-not-found", "--wait=true")
	t.Cleanup(func() { env.RunKubectl("delete", "pod", pod, "--ignore-not-found", "--wait=false") })
	env.Kubectl(t, "run", pod, "--image=harness-selftest:v1", "--restart=Never",
		"--overrides", `{"spec":{"nodeName":"`+env.NodeName+`"}}`,
		"--command", "--", "/busybox", "echo", "selftest-ok")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		phase := env.Kubectl(t, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
		if phase == "Succeeded" {
			break
		}
		if phase == "Failed" || time.Now().After(deadline) {
			t.Fatalf("pod phase %q\n%s", phase, env.Kubectl(t, "describe", "pod", pod))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if logs := env.Kubectl(t, "logs", pod); strings.TrimSpace(logs) != "selftest-ok" {
		t.Fatalf("logs = %q, want selftest-ok", logs)
	}
}
