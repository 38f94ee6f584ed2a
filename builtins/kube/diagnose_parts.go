package kube

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// describeContainer combines a container's spec and status.
func describeContainer(p *corev1.Pod, c *corev1.Container) ContainerDiag {
	cd := ContainerDiag{
		Name: c.Name, Image: c.Image, State: "unknown",
		ReadinessProbe: describeProbe(c, c.ReadinessProbe),
		LivenessProbe:  describeProbe(c, c.LivenessProbe),
		StartupProbe:   describeProbe(c, c.StartupProbe),
		Ports:          []Port{}, VolumeMounts: []Mount{},
		Limits: quantities(c.Resources.Limits), Requests: quantities(c.Resources.Requests),
	}
	for _, port := range c.Ports {
		cd.Ports = append(cd.Ports, Port{Name: port.Name, ContainerPort: port.ContainerPort, Protocol: string(port.Protocol)})
	}
	for _, m := range c.VolumeMounts {
		cd.VolumeMounts = append(cd.VolumeMounts, Mount{
			Name: m.Name, MountPath: m.MountPath, SubPath: m.SubPath, ReadOnly: m.ReadOnly,
			Source: volumeSource(p, m.Name),
		})
	}
	st := containerStatus(p, c.Name)
	if st == nil {
		return cd
	}
	cd.Image = st.Image
	if cd.Image == "" {
		cd.Image = c.Image
	}
	cd.Ready, cd.Restarts = st.Ready, st.RestartCount
	if _, id, ok := strings.Cut(st.ContainerID, "://"); ok {
		cd.ContainerID = id
	}
	switch s := st.State; {
	case s.Waiting != nil:
		cd.State, cd.Reason, cd.Message = "waiting", s.Waiting.Reason, s.Waiting.Message
	case s.Running != nil:
		cd.State, cd.StartedAt = "running", rfc3339(s.Running.StartedAt.Time)
	case s.Terminated != nil:
		cd.State, cd.Reason, cd.Message = "terminated", s.Terminated.Reason, s.Terminated.Message
		code := s.Terminated.ExitCode
		cd.ExitCode = &code
		cd.StartedAt = rfc3339(s.Terminated.StartedAt.Time)
	}
	if t := st.LastTerminationState.Terminated; t != nil {
		cd.LastTermination = &Termination{
			Reason: t.Reason, ExitCode: t.ExitCode, Signal: t.Signal, Message: t.Message,
			StartedAt: rfc3339(t.StartedAt.Time), FinishedAt: rfc3339(t.FinishedAt.Time),
		}
	}
	return cd
}

func quantities(rl corev1.ResourceList) map[string]string {
	if len(rl) == 0 {
		return nil
	}
	m := make(map[string]string, len(rl))
	for k, v := range rl {
		m[string(k)] = v.String()
	}
	return m
}

// ProbeInfo describes a probe, its port resolved to a number.
type ProbeInfo struct {
	// Type is http, tcp, exec or grpc.
	Type     string   `json:"type"`
	Path     string   `json:"path,omitempty"`
	Port     int32    `json:"port,omitempty"`
	PortName string   `json:"port_name,omitempty"`
	Scheme   string   `json:"scheme,omitempty"`
	Host     string   `json:"host,omitempty"`
	Command  []string `json:"command,omitempty"`
	// Problem is set when the probe names a port the container lacks.
	Problem          string `json:"problem,omitempty"`
	InitialDelay     int32  `json:"initial_delay"`
	Period           int32  `json:"period"`
	Timeout          int32  `json:"timeout"`
	FailureThreshold int32  `json:"failure_threshold"`
	SuccessThreshold int32  `json:"success_threshold"`
}

// describeProbe describes pr, resolving a named port against c's ports.
func describeProbe(c *corev1.Container, pr *corev1.Probe) *ProbeInfo {
	if pr == nil {
		return nil
	}
	pi := &ProbeInfo{
		InitialDelay: pr.InitialDelaySeconds, Period: orDefault(pr.PeriodSeconds, 10),
		Timeout: orDefault(pr.TimeoutSeconds, 1), FailureThreshold: orDefault(pr.FailureThreshold, 3),
		SuccessThreshold: orDefault(pr.SuccessThreshold, 1),
	}
	switch h := pr.ProbeHandler; {
	case h.HTTPGet != nil:
		pi.Type, pi.Path, pi.Host = "http", h.HTTPGet.Path, h.HTTPGet.Host
		pi.Scheme = string(h.HTTPGet.Scheme)
		if pi.Scheme == "" {
			pi.Scheme = "HTTP"
		}
		resolvePort(c, h.HTTPGet.Port, pi)
	case h.TCPSocket != nil:
		pi.Type, pi.Host = "tcp", h.TCPSocket.Host
		resolvePort(c, h.TCPSocket.Port, pi)
	case h.Exec != nil:
		pi.Type, pi.Command = "exec", h.Exec.Command
	case h.GRPC != nil:
		pi.Type, pi.Port = "grpc", h.GRPC.Port
	}
	return pi
}

func orDefault(v, d int32) int32 {
	if v == 0 {
		return d
	}
	return v
}

// resolvePort sets pi.Port from a numeric port or a named one.
func resolvePort(c *corev1.Container, port intstr.IntOrString, pi *ProbeInfo) {
	if port.Type == intstr.Int {
		pi.Port = port.IntVal
		return
	}
	pi.PortName = port.StrVal
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			pi.Port = p.ContainerPort
			return
		}
	}
	pi.Problem = fmt.Sprintf("port %q is not declared by container %q", port.StrVal, c.Name)
}

// volumeSource describes the pod volume named name.
func volumeSource(p *corev1.Pod, name string) *VolumeSource {
	for _, v := range p.Spec.Volumes {
		if v.Name != name {
			continue
		}
		s := v.VolumeSource
		switch {
		case s.ConfigMap != nil:
			return &VolumeSource{Kind: "configmap", Name: s.ConfigMap.Name, Items: keyPaths(s.ConfigMap.Items), Optional: isTrue(s.ConfigMap.Optional)}
		case s.Secret != nil:
			return &VolumeSource{Kind: "secret", Name: s.Secret.SecretName, Items: keyPaths(s.Secret.Items), Optional: isTrue(s.Secret.Optional)}
		case s.EmptyDir != nil:
			return &VolumeSource{Kind: "emptydir"}
		case s.HostPath != nil:
			return &VolumeSource{Kind: "hostpath", Path: s.HostPath.Path}
		case s.PersistentVolumeClaim != nil:
			return &VolumeSource{Kind: "pvc", Name: s.PersistentVolumeClaim.ClaimName}
		case s.Projected != nil:
			return &VolumeSource{Kind: "projected"}
		case s.DownwardAPI != nil:
			return &VolumeSource{Kind: "downwardapi"}
		}
		return &VolumeSource{Kind: "other"}
	}
	return nil
}

func keyPaths(items []corev1.KeyToPath) []KeyPath {
	var out []KeyPath
	for _, it := range items {
		out = append(out, KeyPath{Key: it.Key, Path: it.Path})
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

var (
	probeMessage = regexp.MustCompile(`^(Readiness|Liveness|Startup) probe (?:failed|errored)(?::\s*)?(.*)$`)
	fieldPathCtr = regexp.MustCompile(`^spec\.(?:initContainers|containers|ephemeralContainers)\{(.+)\}$`)
)

// probeFailure reads an Unhealthy event of the kubelet.
func probeFailure(e Event) (ProbeFailure, bool) {
	if e.Reason != "Unhealthy" {
		return ProbeFailure{}, false
	}
	f := ProbeFailure{Message: e.Message, Count: e.Count, LastSeen: e.LastSeen, Probe: "unknown"}
	if m := probeMessage.FindStringSubmatch(e.Message); m != nil {
		f.Probe = strings.ToLower(m[1])
		if m[2] != "" {
			f.Message = strings.TrimSpace(m[2])
		}
	}
	if m := fieldPathCtr.FindStringSubmatch(e.FieldPath); m != nil {
		f.Container = m[1]
	}
	return f, true
}

// ignoredWaiting are waiting reasons of a normally starting container.
var ignoredWaiting = map[string]bool{"": true, "ContainerCreating": true, "PodInitializing": true}

// problems states what is wrong with the pod, most important first.
func problems(p *corev1.Pod, d *Diagnosis) []string {
	out := []string{}
	if p.DeletionTimestamp != nil {
		out = append(out, fmt.Sprintf("pod is terminating (deletion requested at %s)", rfc3339(p.DeletionTimestamp.Time)))
	}
	if p.Status.Phase == corev1.PodFailed {
		out = append(out, strings.TrimSpace(fmt.Sprintf("pod failed: %s %s", p.Status.Reason, p.Status.Message)))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
			out = append(out, fmt.Sprintf("pod is not scheduled: %s: %s", c.Reason, c.Message))
		}
	}
	groups := []struct {
		kind string
		list []ContainerDiag
	}{{"init container", d.InitContainers}, {"container", d.Containers}}
	for _, g := range groups {
		for _, c := range g.list {
			out = append(out, containerProblems(g.kind, c, p.Status.Phase)...)
		}
	}
	for _, f := range d.ProbeFailures {
		out = append(out, fmt.Sprintf("%s probe of container %q failing: %s (%d times, last at %s)", f.Probe, f.Container, f.Message, f.Count, f.LastSeen))
	}
	seen := map[string]bool{}
	for _, w := range d.Warnings {
		if w.Reason == "BackOff" || seen[w.Reason+w.Message] {
			continue // covered by the container's waiting reason
		}
		seen[w.Reason+w.Message] = true
		out = append(out, fmt.Sprintf("warning %s: %s (%d times, last at %s)", w.Reason, w.Message, w.Count, w.LastSeen))
	}
	return out
}

func containerProblems(kind string, c ContainerDiag, phase corev1.PodPhase) []string {
	var out []string
	who := fmt.Sprintf("%s %q", kind, c.Name)
	switch c.State {
	case "waiting":
		if !ignoredWaiting[c.Reason] {
			out = append(out, strings.TrimSuffix(fmt.Sprintf("%s is waiting: %s: %s", who, c.Reason, c.Message), ": "))
		}
	case "terminated":
		if c.ExitCode != nil && *c.ExitCode != 0 {
			out = append(out, fmt.Sprintf("%s terminated: %s (exit code %d)", who, c.Reason, *c.ExitCode))
		}
	case "running":
		if !c.Ready && kind == "container" && phase == corev1.PodRunning {
			out = append(out, fmt.Sprintf("%s is running but not ready", who))
		}
	}
	if t := c.LastTermination; t != nil && c.Restarts > 0 {
		out = append(out, fmt.Sprintf("%s has restarted %d times; last exit: %s (exit code %d) at %s", who, c.Restarts, t.Reason, t.ExitCode, t.FinishedAt))
		if t.Reason == "OOMKilled" {
			out = append(out, fmt.Sprintf("%s was OOMKilled (memory limit %s)", who, orNone(c.Limits["memory"])))
		}
	}
	for _, pr := range []*ProbeInfo{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if pr != nil && pr.Problem != "" {
			out = append(out, fmt.Sprintf("%s probe: %s", who, pr.Problem))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
