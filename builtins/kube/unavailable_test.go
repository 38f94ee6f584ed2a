package kube

import (
	"strings"
	"testing"
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
