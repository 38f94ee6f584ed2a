package agent

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodSpec(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := podSpec(podConfig{
		Name: "kdiag-agent-1", Namespace: "ns", Node: "node-a", Image: "img:v1", Binary: "/kdiag",
		RunID: "r1", SocketDir: "/run/containerd", ActiveDeadline: time.Hour, Now: now,
	})
	s := p.Spec
	if s.NodeName != "node-a" || !s.HostPID || !s.HostNetwork || *s.ActiveDeadlineSeconds != 3600 ||
		s.RestartPolicy != corev1.RestartPolicyNever || *s.AutomountServiceAccountToken {
		t.Errorf("pod spec %+v", s)
	}
	if diff := cmp.Diff(map[string]string{LabelManagedBy: "kdiag", LabelRole: "agent", LabelRun: "r1"}, p.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if p.Annotations[AnnotationHeartbeat] != "2026-01-02T03:04:05Z" || p.Annotations[AnnotationNode] != "node-a" {
		t.Errorf("annotations %v", p.Annotations)
	}
	if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, s.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	c := s.Containers[0]
	if c.Name != containerName || c.Image != "img:v1" || !*c.SecurityContext.Privileged ||
		strings.Join(c.Command, " ") != "/kdiag agent idle" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("container %+v", c)
	}
	if c.VolumeMounts[0].MountPath != "/run/containerd" || s.Volumes[0].HostPath.Path != "/run/containerd" ||
		*s.Volumes[0].HostPath.Type != corev1.HostPathDirectory {
		t.Errorf("socket mount %+v %+v", c.VolumeMounts, s.Volumes)
	}
	// Without an endpoint the host's /run is mounted, for autodetection.
	p = podSpec(podConfig{Name: "x", Binary: "/kdiag"})
	if p.Spec.Volumes[0].HostPath.Path != "/run" {
		t.Errorf("no endpoint: volumes %+v", p.Spec.Volumes)
	}
}

func TestSocketDir(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///tmp/kdc/containerd/containerd.sock": "/tmp/kdc/containerd",
		"/run/crio/crio.sock":                        "/run/crio",
		"unix:///run/x/../containerd/c.sock":         "/run/containerd",
		"tcp://1.2.3.4:1234":                         "",
		"relative.sock":                              "",
		"":                                           "",
	} {
		if got := socketDir(in); got != want {
			t.Errorf("socketDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pod := func(beat string, created time.Time, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationHeartbeat: beat}, CreationTimestamp: metav1.NewTime(created)},
			Status:     corev1.PodStatus{Phase: phase},
		}
	}
	old := now.Add(-time.Hour)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"fresh heartbeat", pod(now.Add(-20*time.Second).Format(time.RFC3339), old, corev1.PodRunning), false},
		{"heartbeat of 61s", pod(now.Add(-61*time.Second).Format(time.RFC3339), old, corev1.PodRunning), true},
		{"no heartbeat, new pod", pod("", now.Add(-5*time.Second), corev1.PodPending), false},
		{"bad heartbeat, old pod", pod("yesterday", old, corev1.PodRunning), true},
		{"ended", pod(now.Format(time.RFC3339), now, corev1.PodSucceeded), true},
	} {
		if got := stale(tc.pod, now); got != tc.want {
			t.Errorf("%s: stale = %v", tc.name, got)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "local": ModeLocal, "agent": ModeAgent} {
		if got, err := ParseMode(in); got != want || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("remote"); err == nil || err.Error() != "--node-mode=remote: want local, agent or auto" {
		t.Errorf("ParseMode(remote) = %v", err)
	}
}

func TestNeeds(t *testing.T) {
	if n := Needs(ModeLocal, "find_pid", "ns", ""); n != nil {
		t.Errorf("local: %v", n)
	}
	if n := Needs(ModeAuto, "http_probe", "ns", ""); n != nil {
		t.Errorf("auto: %v", n)
	}
	if n := Needs(ModeAgent, "get_pod", "ns", ""); n != nil {
		t.Errorf("a kube built-in: %v", n)
	}
	got := Needs(ModeAgent, "find_pid", "app", "kdiag")
	var rules []string
	for _, n := range got {
		rules = append(rules, n.Verb+" "+n.Resource+"/"+n.Subresource+" in "+n.Namespace)
	}
	want := []string{"create pods/ in kdiag", "get pods/ in kdiag", "list pods/ in kdiag", "patch pods/ in kdiag",
		"delete pods/ in kdiag", "create pods/exec in kdiag", "get pods/ in app"}
	if diff := cmp.Diff(want, rules); diff != "" {
		t.Errorf("find_pid's needs (-want +got):\n%s", diff)
	}
	if n := Needs(ModeAgent, "strace_sample", "app", ""); len(n) != 6 || n[5].Namespace != "app" {
		t.Errorf("strace_sample's needs: %v", n)
	}
}

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"node-1", "node-1", true},
		{"Node-1", "node-1.example.internal", true},
		{"node-1.example.internal", "node-1", true},
		{"node-1.a", "node-1.b", false},
		{"node-1", "node-10", false},
		{"", "", false},
	} {
		if got := sameHost(tc.a, tc.b); got != tc.want {
			t.Errorf("sameHost(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// TestThisMachine compares with the machine's real addresses and name.
func TestThisMachine(t *testing.T) {
	host, _ := os.Hostname()
	if !thisMachine(host, nil) {
		t.Errorf("the host name %q is not this machine", host)
	}
	if thisMachine("no-such-node-kdiag", []string{"192.0.2.77", "127.0.0.1", "::1"}) {
		t.Error("a documentation address or loopback is this machine")
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLoopback() {
			continue
		}
		if !thisMachine("no-such-node-kdiag", []string{"192.0.2.77", p.Addr().String()}) {
			t.Errorf("address %s is not this machine", p.Addr())
		}
		return
	}
	t.Log("no non-loopback address to test with")
}

// TestAgentModeNeedsAPod runs tiny runbooks through the engine: in agent
// mode a node built-in called before any find_pid(pod=) says so, and so
// does find_pid with container_id= alone; neither touches the cluster (the
// kubeconfig does not exist). In auto mode the same call runs here.
func TestAgentModeNeedsAPod(t *testing.T) {
	dir := t.TempDir()
	rb := filepath.Join(dir, "rb.star")
	os.WriteFile(rb, []byte(`runbook(name = "t", summary = "t", params = [param("what")])

def main(p):
    if p.what == "enter_ns":
        h = enter_ns(`+itoaPID()+`, namespaces = ["net"])
        verdict("pid %d" % h.pid)
    else:
        find_pid(container_id = "abc")
`), 0o644)
	clients := kube.NewClients(filepath.Join(dir, "no-kubeconfig"), "", "")
	run := func(mode Mode, what string) *engine.Result {
		r := New(Options{Mode: mode, Clients: clients})
		return engine.Run(context.Background(), rb, engine.Options{Specs: r.Specs(), Params: map[string]any{"what": what}})
	}
	res := run(ModeAgent, "enter_ns")
	want := "enter_ns: --node-mode=agent runs node built-ins on the node of a pod, and no pod is known yet for pid " + itoaPID() + ": call find_pid(pod=..., namespace=...) first"
	if res.Err == nil || !strings.Contains(res.Err.Error(), want) || engine.KindOf(res.Err) != engine.KindInvalid {
		t.Errorf("agent mode, enter_ns first: %v (kind %s)", res.Err, engine.KindOf(res.Err))
	}
	res = run(ModeAgent, "find_pid")
	if res.Err == nil || !strings.Contains(res.Err.Error(), "find_pid: --node-mode=agent needs pod= (and namespace=) to know which node to ask; container_id= alone names no node") {
		t.Errorf("agent mode, find_pid(container_id=): %v", res.Err)
	}
	if os.Geteuid() == 0 {
		res = run(ModeAuto, "enter_ns")
		if res.Err != nil || res.Footer.Status != "ok" {
			t.Errorf("auto mode, enter_ns on this machine: %v", res.Err)
		}
	}
}

func itoaPID() string { return strconv.Itoa(os.Getpid()) }
