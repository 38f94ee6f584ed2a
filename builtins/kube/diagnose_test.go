package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A named probe port the container does not declare cannot be made on a
// real cluster without a crash loop of its own; the rest is covered by the
// e2e tests.
func TestDescribeProbeNamedPorts(t *testing.T) {
	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}}}
	got := describeProbe(c, &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 5})
	want := &ProbeInfo{Type: "http", Path: "/healthz", Port: 8080, PortName: "http", Scheme: "HTTP", Period: 5, Timeout: 1, FailureThreshold: 3, SuccessThreshold: 1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	bad := describeProbe(c, &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("metrics")}}})
	if bad.Port != 0 || bad.Problem != `port "metrics" is not declared by container "app"` {
		t.Errorf("undeclared port: %+v", bad)
	}
}

func TestProbeFailureFromEvent(t *testing.T) {
	f, ok := probeFailure(Event{Reason: "Unhealthy", Message: "Readiness probe failed: HTTP probe failed with statuscode: 500",
		FieldPath: "spec.containers{app}", Count: 7, LastSeen: "2025-01-01T00:00:00Z"})
	want := ProbeFailure{Container: "app", Probe: "readiness", Message: "HTTP probe failed with statuscode: 500", Count: 7, LastSeen: "2025-01-01T00:00:00Z"}
	if !ok || f != want {
		t.Errorf("got %+v, %v", f, ok)
	}
	if _, ok := probeFailure(Event{Reason: "BackOff"}); ok {
		t.Error("a BackOff event read as a probe failure")
	}
}

func TestDiagnoseOOMKilled(t *testing.T) {
	p := runningPod()
	p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"memory": resourceMust("64Mi")}
	p.Status.ContainerStatuses[0].RestartCount = 2
	p.Status.ContainerStatuses[0].Ready = false
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
		Reason: "OOMKilled", ExitCode: 137, FinishedAt: metav1.Unix(1700000000, 0),
	}
	d := diagnose(p, nil, "")
	want := []string{
		`container "app" is running but not ready`,
		`container "app" has restarted 2 times; last exit: OOMKilled (exit code 137) at 2023-11-14T22:13:20Z`,
		`container "app" was OOMKilled (memory limit 64Mi)`,
	}
	if diff := cmp.Diff(want, d.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if d.Ready != "0/1" || d.Containers[0].LastTermination.ExitCode != 137 {
		t.Errorf("ready %s, container %+v", d.Ready, d.Containers[0])
	}
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }
