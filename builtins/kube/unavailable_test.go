package kube

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestFailedChecks(t *testing.T) {
	body := "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]etcd-readiness ok\n[-]poststarthook/x\x1b[2J failed: reason withheld\nreadyz check failed\n"
	got := failedChecks([]byte(body))
	if strings.Join(got, ",") != "etcd,poststarthook/x2" {
		t.Errorf("failedChecks = %q", got)
	}
	if !(&notReadyError{failed: got}).storage() || (&notReadyError{failed: []string{"ping"}}).storage() {
		t.Error("storage() wrong")
	}
}

// TestKubeletDial: the API server's failure to reach a kubelet, as logs
// gets it from a real API server (test/faults TestFaultKilled/kubelet),
// is told apart from the API server's own errors.
func TestKubeletDial(t *testing.T) {
	for msg, want := range map[string]string{
		`Get "https://10.255.255.1:10250/containerLogs/ns/p/c?tailLines=20": dial tcp 10.255.255.1:10250: connect: connection refused`: "dial tcp 10.255.255.1:10250: connect: connection refused",
		`Get "https://[fd00::5]:10250/containerLogs/ns/p/c": dial tcp [fd00::5]:10250: i/o timeout`:                                    "dial tcp [fd00::5]:10250: i/o timeout",
		`pods "p" not found`: "",
		`container "c" in pod "p" is waiting to start: ContainerCreating`: "",
	} {
		err := apierrors.NewInternalError(errors.New(msg))
		if got := kubeletDial(err); got != want {
			t.Errorf("kubeletDial(%q) = %q, want %q", msg, got, want)
		}
		if got := transient(err); got != (want != "") {
			t.Errorf("transient(%q) = %v", msg, got)
		}
	}
	if kubeletDial(errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")) != "" {
		t.Error("a connection the client itself failed is the API server's, not a kubelet's")
	}
}
