package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestProfileSecurityContext(t *testing.T) {
	for _, tc := range []struct {
		profile string
		want    *corev1.SecurityContext
	}{
		{"legacy", nil},
		{"baseline", nil},
		{"general", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}}}},
		{"restricted", &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			AllowPrivilegeEscalation: ptr.To(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: "RuntimeDefault"},
		}},
		{"netadmin", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}}},
		{"sysadmin", &corev1.SecurityContext{Privileged: ptr.To(true)}},
	} {
		got, err := profileSecurityContext(tc.profile)
		if err != nil {
			t.Fatalf("%s: %v", tc.profile, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.profile, d)
		}
	}
	if _, err := profileSecurityContext("root"); err == nil || err.Error() != `unknown profile "root" (profiles: legacy, general, baseline, restricted, netadmin, sysadmin)` {
		t.Errorf("unknown profile: err = %v", err)
	}
}

func TestDebugContainer(t *testing.T) {
	got, err := debugContainer("kdiag-abcde", "busybox-local:v1", "Never", "app", "general", []string{"sleep", "3600"})
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "kdiag-abcde", Image: "busybox-local:v1", ImagePullPolicy: corev1.PullNever,
			Command: []string{"sleep", "3600"}, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}}},
		},
		TargetContainerName: "app",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
