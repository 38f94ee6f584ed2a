package kube

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// profiles are the debug profiles of kubectl debug, in its order.
var profiles = []string{"legacy", "general", "baseline", "restricted", "netadmin", "sysadmin"}

// profileSecurityContext returns the securityContext kubectl debug gives
// an ephemeral debug container under profile (kubectl's
// pkg/cmd/debug/profiles.go, ephemeral style):
//
//   - legacy, baseline: none
//   - general: add SYS_PTRACE
//   - restricted: runAsNonRoot, drop ALL capabilities, no privilege
//     escalation, RuntimeDefault seccomp profile
//   - netadmin: add NET_ADMIN and NET_RAW
//   - sysadmin: privileged
func profileSecurityContext(profile string) (*corev1.SecurityContext, error) {
	switch profile {
	case "legacy", "baseline":
		return nil, nil
	case "general":
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}}}, nil
	case "restricted":
		return &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			AllowPrivilegeEscalation: ptr.To(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}, nil
	case "netadmin":
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}}, nil
	case "sysadmin":
		return &corev1.SecurityContext{Privileged: ptr.To(true)}, nil
	}
	return nil, fmt.Errorf("unknown profile %q (profiles: %s)", profile, strings.Join(profiles, ", "))
}
