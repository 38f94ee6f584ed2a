package e2e

// More shapes and causes of the library's runbooks (issue 16, item 5): a
// bare pod, a StatefulSet with a native sidecar, a Deployment's sidecar,
// each with a cause of its own. Every test runs in a namespace of its own
// ("lib3-..."), deleted when it ends.

import (
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
	corev1 "k8s.io/api/core/v1"
)

// libraryInitStatus returns the status of the pod's init container (or
// native sidecar) named name.
func libraryInitStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

// libraryOOMKilled is the condition: the status's last instance was OOMKilled.
func libraryOOMKilled(s *corev1.ContainerStatus) bool {
	return s != nil && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.Reason == "OOMKilled"
}

// libraryEvictedPod waits up to timeout for a pod matching the selector to
// be evicted and returns its name.
func libraryEvictedPod(t *testing.T, env *harness.Env, ns, selector string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", selector, "-o", `jsonpath={range .items[?(@.status.reason=="Evicted")]}{.metadata.name} {end}`)
		if f := strings.Fields(out); len(f) > 0 {
			return f[0]
		}
		if time.Now().After(deadline) {
			desc, _, _ := env.RunKubectl("describe", "pods", "-n", ns, "-l", selector)
			t.Fatalf("no pod %s was evicted within %s:\n%s", selector, timeout, desc)
		}
		time.Sleep(2 * time.Second)
	}
}

// TestLibraryOOMKilledReportPeak: a bare pod whose working set holds steady
// at ~36 MiB and needs 16 MiB more at every report (every 12s) under a
// 48Mi limit. No leak: the runbook must not call it growth, and must say
// to raise the limit above the one it is killed at. Its 15s sample sees
// the instance killed: the run must survive that.
func TestLibraryOOMKilledReportPeak(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	importExampleApp(t, env, "./examples/oomkilled/app", "kdiag-report-app:v1")
	ns := namespace(t, env, "lib3-oom-peak")
	libraryApply(t, env, ns, "examples/oomkilled/report-pod.yaml")
	libraryWait(t, env, ns, "reports", "an OOM kill", 120*time.Second, func(p *corev1.Pod) bool {
		return libraryOOMKilled(libraryStatus(p, "reports"))
	})
	r := libraryRun(t, env, "oomkilled", "pod=reports", "namespace="+ns, "wait=90s", "sample=15s")
	r.verdictSays(t, "container reports is OOMKilled", "holds steady at", "nothing leaks: the limit is too small",
		"cause pod/reports spec.containers[0].resources.limits.memory: 48Mi", "fix: raise containers[0].resources.limits.memory to at least")
	if strings.Contains(r.verdict, "grows") {
		t.Errorf("a steady working set with a peak is called growth:\n%s", r.text())
	}
}

// TestLibraryOOMKilledNativeSidecar: a StatefulSet's native sidecar (an
// init container with restartPolicy Always) grows to its 32Mi limit while
// the main container runs fine; the verdict names the sidecar and its
// initContainers field.
func TestLibraryOOMKilledNativeSidecar(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-oom-sidecar")
	libraryApply(t, env, ns, "examples/oomkilled/sidecar.yaml")
	libraryWait(t, env, ns, "search-0", "an OOM kill of the sidecar", 150*time.Second, func(p *corev1.Pod) bool {
		return libraryOOMKilled(libraryInitStatus(p, "log-buffer"))
	})
	r := libraryRun(t, env, "oomkilled", "pod=search-0", "namespace="+ns, "wait=90s", "sample=8s")
	r.verdictSays(t, "container log-buffer is OOMKilled", "its working set grows",
		"statefulset/search spec.template.spec.initContainers[0].resources.limits.memory: 32Mi")
	if strings.Contains(r.text(), "container search ") {
		t.Errorf("the main container is blamed:\n%s", r.text())
	}
}

// TestLibraryEvictedEmptyDir: a bare pod writes past its emptyDir's
// sizeLimit; the verdict names the volume's field and the container that
// writes it (its sidecar mounts the volume read-only).
func TestLibraryEvictedEmptyDir(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-evict-emptydir")
	libraryApply(t, env, ns, "examples/evicted/emptydir-pod.yaml")
	pod := libraryEvictedPod(t, env, ns, "app=exporter", 240*time.Second)
	r := libraryRun(t, env, "evicted", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "emptyDir scratch exceeded pod/exporter spec.volumes[0].emptyDir.sizeLimit: 8Mi",
		"written by container exporter at /scratch, the only container that mounts it writable", "make container exporter (/scratch) clean up")
	if strings.Contains(r.text(), "container uploader at") {
		t.Errorf("the read-only sidecar is named as a writer:\n%s", r.text())
	}
}

// TestLibraryEvictedSidecarLimit: a Deployment's sidecar writes past its
// own ephemeral-storage limit while the pod stays under the sum of its
// containers' limits; the kubelet names the container and so must the
// verdict, with the replacement's growth measured.
func TestLibraryEvictedSidecarLimit(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-evict-sidecar")
	libraryApply(t, env, ns, "examples/evicted/sidecar-limit.yaml")
	pod := libraryEvictedPod(t, env, ns, "app=gateway", 180*time.Second)
	libraryWait(t, env, ns, libraryRunningPodOf(t, env, ns, "app=gateway"), "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "evicted", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "container audit-log exceeded deployment/gateway spec.template.spec.containers[1].resources.limits.ephemeral-storage: 8Mi",
		"to /var/log without bound")
	if strings.Contains(r.verdict, "container gateway exceeded") {
		t.Errorf("the main container is blamed:\n%s", r.text())
	}
}

// TestLibraryLivenessSidecarPort: a Deployment's sidecar is killed by a
// TCP liveness probe on a port it does not serve; both containers listen
// in the pod, and the fix must be the sidecar's own port.
func TestLibraryLivenessSidecarPort(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-liveness-port")
	libraryApply(t, env, ns, "examples/liveness-restarts/sidecar-port.yaml")
	pod := libraryPodOf(t, env, ns, "app=orders")
	libraryWait(t, env, ns, pod, "a liveness kill of the sidecar", 120*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "metrics-proxy")
		return s != nil && s.RestartCount >= 1
	})
	r := libraryRun(t, env, "liveness-restarts", "pod="+pod, "namespace="+ns, "wait=60s")
	r.verdictSays(t, "container metrics-proxy of pod", "nothing listens on port 9090", "container metrics-proxy itself on 9091",
		"cause deployment/orders spec.template.spec.containers[1].livenessProbe.tcpSocket.port: 9090", "fix: set the probe's port to 9091")
}

// TestLibraryRolloutStuckSurge: revision 2 raises a sidecar's CPU request
// beyond any node; the surge pod stays Pending and the default strategy's
// 25% of 2 replicas lets no old pod go.
func TestLibraryRolloutStuckSurge(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-rollout-surge")
	libraryApply(t, env, ns, "examples/rollout-stuck/surge.yaml")
	env.Kubectl(t, "rollout", "status", "-n", ns, "deployment/checkout", "--timeout=90s")
	libraryApply(t, env, ns, "examples/rollout-stuck/surge-revision2.yaml")
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "deployment", "checkout", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
		if out == "ProgressDeadlineExceeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkout's rollout did not exceed its progress deadline: %q", out)
		}
		time.Sleep(2 * time.Second)
	}
	r := libraryRun(t, env, "rollout-stuck", "deployment=checkout", "namespace="+ns)
	r.verdictSays(t, "deployment/checkout spec.template.spec.containers[1].resources.requests.cpu: 64 (was 10m) of container mesh-proxy",
		"unschedulable", "Insufficient cpu", "kubectl rollout undo deployment/checkout")
	r.mustSay(t, "maxUnavailable 25% of 2 replicas rounds down to 0")
}

// TestLibraryEvictedPodTotalUnlimitedWriter: the pod passes the sum of its
// containers' ephemeral-storage limits, but the writer is a sidecar with no
// limit filling an emptyDir; the eviction message names no container. The
// runbook measures every container of the replacement and names the
// sidecar, not the container that has the limit.
func TestLibraryEvictedPodTotalUnlimitedWriter(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib3-evict-total")
	libraryApply(t, env, ns, "examples/evicted/emptydir-no-limit.yaml")
	pod := libraryEvictedPod(t, env, ns, "app=ingest", 240*time.Second)
	libraryWait(t, env, ns, libraryRunningPodOf(t, env, ns, "app=ingest"), "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "evicted", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "the pod passed the 16Mi sum of its containers' ephemeral-storage limits (deployment/ingest spec.template.spec.containers[0].resources.limits.ephemeral-storage: 16Mi)",
		"container cache-warmer, with no limit of its own, writes", "to /cache", "make container cache-warmer (containers[1]) delete or rotate", "give emptyDir cache a sizeLimit")
	if strings.Contains(r.verdict, "container ingest exceeded") {
		t.Errorf("the container with the limit is blamed:\n%s", r.text())
	}
}
