package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestUnacknowledged: a pod scheduled on a node whose kubelet never
// reported on it names that node; a pod the kubelet has started on, or
// one not scheduled, does not.
func TestUnacknowledged(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"never seen", nil, ""},
		{"not scheduled", &corev1.Pod{}, ""},
		{"scheduled, no word from the kubelet", &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n2"}}, "n2"},
		{"started", &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n2"}, Status: corev1.PodStatus{StartTime: &now}}, ""},
		{"container status", &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n2"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "agent"}}}}, ""},
	} {
		if got := unacknowledged(tc.pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
