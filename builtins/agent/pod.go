package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/kdiag/kdiag/engine"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The labels and annotations of an agent pod.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelRole           = "kdiag.io/role"
	LabelRun            = "kdiag.io/run"
	AnnotationHeartbeat = "kdiag.io/heartbeat"
	AnnotationNode      = "kdiag.io/node"
	// Selector selects every agent pod.
	Selector = LabelManagedBy + "=kdiag," + LabelRole + "=agent"
)

// containerName is the agent pod's only container.
const containerName = "agent"

var (
	// heartbeatEvery is how often a running kdiag refreshes the heartbeat
	// annotation of its agent pods.
	heartbeatEvery = 10 * time.Second
	// staleAfter is the age of a heartbeat after which an agent pod is
	// taken to be left behind by a kdiag that died, and deleted.
	staleAfter = 60 * time.Second
	// pollEvery is how often a starting or deleted agent pod is looked at.
	pollEvery = 100 * time.Millisecond
)

// podConfig is what an agent pod is made of.
type podConfig struct {
	Name, Namespace, Node string
	Image, Binary         string
	RunID                 string
	// SocketDir is the host directory of the CRI socket, mounted at the
	// same path; "" mounts the host's /run (for autodetection).
	SocketDir      string
	ActiveDeadline time.Duration
	Now            time.Time
}

// newPodName returns a fresh agent pod name.
func newPodName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "kdiag-agent-" + hex.EncodeToString(b)
}

// socketDir returns the directory of a unix:// endpoint or socket path,
// "" when it names none.
func socketDir(endpoint string) string {
	p := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "unix" {
			return ""
		}
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	return path.Dir(path.Clean(p))
}

// podSpec returns the agent pod: pinned to the node, in the host's PID and
// network namespaces, privileged, with the runtime socket's directory,
// tolerating every taint, and bounded by activeDeadlineSeconds in case
// nobody deletes it.
func podSpec(c podConfig) *corev1.Pod {
	yes := true
	no := false
	root := int64(0)
	grace := int64(5)
	deadline := int64(c.ActiveDeadline / time.Second)
	dir := c.SocketDir
	if dir == "" {
		dir = "/run"
	}
	hostDir := corev1.HostPathDirectory
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      c.Name,
			Namespace: c.Namespace,
			Labels:    map[string]string{LabelManagedBy: "kdiag", LabelRole: "agent", LabelRun: c.RunID},
			Annotations: map[string]string{
				AnnotationHeartbeat: c.Now.UTC().Format(time.RFC3339),
				AnnotationNode:      c.Node,
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      c.Node,
			HostPID:                       true,
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           c.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{c.Binary, "agent", "idle"},
				SecurityContext: &corev1.SecurityContext{Privileged: &yes, RunAsUser: &root},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("10m"),
					corev1.ResourceMemory: resource.MustParse("32Mi"),
				}},
				VolumeMounts: []corev1.VolumeMount{{Name: "cri", MountPath: dir}},
			}},
			Volumes: []corev1.Volume{{Name: "cri", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostDir},
			}}},
		},
	}
}

// waitRunning waits until the agent container runs. It fails early, with
// the kubelet's reason, when the pod cannot start: an image that is
// missing or cannot be pulled, a container that cannot be created, a pod
// that ended or was deleted.
func waitRunning(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	last := "not created yet"
	var seen *corev1.Pod
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("agent pod %s/%s was deleted while starting", ns, name)
		case err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "would exceed context deadline"):
			// (client-go's rate limiter gives up just before the deadline:
			// that is the deadline, told below)
			return fmt.Errorf("agent pod %s/%s: %w", ns, name, err)
		case err == nil:
			seen = p
			state, fatal := podState(p)
			if state == "" {
				return nil
			}
			if fatal {
				return fmt.Errorf("agent pod %s/%s on node %s cannot start: %s", ns, name, p.Spec.NodeName, state)
			}
			last = state
		}
		select {
		case <-ctx.Done():
			if w := lastWarning(ctx, cs, ns, name); w != "" {
				last += "; last warning: " + w
			}
			if node := unacknowledged(seen); node != "" {
				if ago, ok := leaseAge(ctx, cs, node); ok && ago < freshLease {
					return engine.Wrapf(engine.KindUnavailable, ctx.Err(), "the container runtime on node %s is likely not answering: agent pod %s/%s did not start in time, and the kubelet there renews its lease (%s ago) but never reported on the pod; node built-ins cannot run there (on the node: crictl info, systemctl status containerd, the kubelet's log)",
						node, ns, name, ago.Round(time.Second))
				}
				return fmt.Errorf("agent pod %s/%s did not start in time: the kubelet on node %s never reported on it (no pod status from it): the kubelet on %s is not answering, or the node is lost; node built-ins cannot run there (kubectl get node %s; on the node: systemctl status kubelet): %w",
					ns, name, node, node, node, ctx.Err())
			}
			// Without a warning (a failed mount, a pull) that says why.
			if strings.HasPrefix(last, "waiting: ContainerCreating") && !strings.Contains(last, "; last warning: ") && seen != nil {
				if ago, ok := leaseAge(ctx, cs, seen.Spec.NodeName); ok && ago < freshLease {
					return engine.Wrapf(engine.KindUnavailable, ctx.Err(), "the container runtime on node %s may not be answering: agent pod %s/%s is still %s, and the kubelet there renews its lease (%s ago); a slow image pull keeps a pod there too (kubectl describe pod -n %s %s; on the node: crictl info, systemctl status containerd)",
						seen.Spec.NodeName, ns, name, last, ago.Round(time.Second), ns, name)
				}
			}
			return fmt.Errorf("agent pod %s/%s did not start in time (%s): %w", ns, name, last, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// freshLease is the age under which a node's lease shows its kubelet
// alive: a kubelet renews it every 10 s (a quarter of its default 40 s
// duration).
const freshLease = 20 * time.Second

// leaseAge returns how long ago the kubelet of node renewed its lease.
func leaseAge(ctx context.Context, cs kubernetes.Interface, node string) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
	if err != nil || l.Spec.RenewTime == nil {
		return 0, false
	}
	return time.Since(l.Spec.RenewTime.Time), true
}

// unacknowledged returns the node of a pod that was scheduled there but
// that the node's kubelet never reported on (no start time, no container
// status), "" otherwise.
func unacknowledged(p *corev1.Pod) string {
	if p == nil || p.Spec.NodeName == "" || p.Status.StartTime != nil || len(p.Status.ContainerStatuses) > 0 {
		return ""
	}
	return p.Spec.NodeName
}

// lastWarning returns the newest Warning event of a pod (a failed mount, a
// slow pull), "" when there is none or events cannot be read.
func lastWarning(ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",type=Warning"})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	newest := evs.Items[0]
	for _, e := range evs.Items[1:] {
		if e.LastTimestamp.After(newest.LastTimestamp.Time) || e.EventTime.After(newest.EventTime.Time) {
			newest = e
		}
	}
	return newest.Reason + ": " + newest.Message
}

// podState says why the agent container is not running ("" when it
// is), and whether it never will.
func podState(p *corev1.Pod) (state string, fatal bool) {
	if p.DeletionTimestamp != nil {
		return "being deleted", true
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return fmt.Sprintf("pod %s: %s %s", strings.ToLower(string(p.Status.Phase)), p.Status.Reason, p.Status.Message), true
	}
	for _, st := range p.Status.ContainerStatuses {
		if st.Name != containerName {
			continue
		}
		switch {
		case st.State.Running != nil:
			return "", false
		case st.State.Terminated != nil:
			t := st.State.Terminated
			return fmt.Sprintf("container exited with code %d (%s) %s", t.ExitCode, t.Reason, t.Message), true
		case st.State.Waiting != nil:
			w := st.State.Waiting
			switch w.Reason {
			case "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
				"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff":
				return fmt.Sprintf("%s: %s; --agent-image must name an image of this kdiag, with kdiag at %s",
					w.Reason, w.Message, p.Spec.Containers[0].Command[0]), true
			}
			return strings.TrimSpace("waiting: " + w.Reason + " " + w.Message), false
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "not scheduled: " + c.Reason + " " + c.Message, false
		}
	}
	return "pending", false
}

// heartbeat writes the heartbeat annotation now.
func heartbeat(ctx context.Context, cs kubernetes.Interface, ns, name string, now time.Time) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnotationHeartbeat, now.UTC().Format(time.RFC3339))
	_, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// errTerminating marks a deletion the API server accepted that did not
// complete in time (the node's kubelet or runtime does not answer).
var errTerminating = errors.New("deletion requested; it completes once the node's kubelet and container runtime answer")

// deletePod deletes an agent pod and waits until it is gone.
func deletePod(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete agent pod %s/%s: %w", ns, name, err)
	}
	for {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent pod %s/%s is still terminating: %w (%w)", ns, name, ctx.Err(), errTerminating)
		case <-time.After(pollEvery):
		}
	}
}

// collect deletes the agent pods in ns that a dead kdiag left behind:
// those whose heartbeat is older than staleAfter (or that have ended),
// except the ones of run keep. It returns their names.
func collect(ctx context.Context, cs kubernetes.Interface, ns, keep string, now time.Time) ([]string, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: Selector})
	if err != nil {
		return nil, fmt.Errorf("list agent pods in %s: %w", ns, err)
	}
	var gone []string
	for i := range list.Items {
		p := &list.Items[i]
		if p.Labels[LabelRun] == keep || p.DeletionTimestamp != nil || !stale(p, now) {
			continue
		}
		err := cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return gone, fmt.Errorf("delete left-over agent pod %s/%s: %w", ns, p.Name, err)
		}
		gone = append(gone, p.Name)
	}
	return gone, nil
}

// stale reports whether an agent pod's kdiag is gone: its heartbeat (or,
// without a readable one, its creation) is older than staleAfter, or the
// pod has ended.
func stale(p *corev1.Pod, now time.Time) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	beat := p.CreationTimestamp.Time
	if t, err := time.Parse(time.RFC3339, p.Annotations[AnnotationHeartbeat]); err == nil {
		beat = t
	}
	return now.Sub(beat) > staleAfter
}
