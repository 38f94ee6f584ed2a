package job

import (
	"context"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/playbook"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Looking at why a run is overdue.
const (
	// freshLease is the age under which a node's lease shows its kubelet
	// alive: a kubelet renews it every 10 s (a quarter of its default
	// 40 s duration).
	freshLease = 20 * time.Second
	// lookTimeout bounds each read made to say why a run is overdue.
	lookTimeout = 5 * time.Second
	// exitSlack is how long past kdiag's own --timeout a container may
	// still be shown running before its runtime is suspected.
	exitSlack = 15 * time.Second
)

// nodeView is what the API server says of a pod's node: the Node and
// the kubelet's lease in kube-node-lease, or why either could not be
// read.
type nodeView struct {
	node     *corev1.Node
	nodeErr  error
	lease    *coordinationv1.Lease
	leaseErr error
}

// sick says which component is likely why the run's pod did not start,
// or stopped reporting, before the Job's deadline: the scheduler, the
// kubelet or the container runtime of the pod's node, or the API server
// itself. It returns "" when nothing points to one.
func (r *jobRun) sick(ctx context.Context) string {
	pod := r.pod
	if p := r.w.firstPod(); p != nil {
		pod = p
	}
	if pod == nil || pod.Spec.NodeName == "" {
		if s := classify(pod, nodeView{}, r.req.Timeout, time.Now()); s != "" {
			return s
		}
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookTimeout)
		defer cancel()
		if _, err := r.j.Client.BatchV1().Jobs(r.job.Namespace).Get(c, r.job.Name, metav1.GetOptions{}); err != nil && !refused(err) {
			return fmt.Sprintf("; the API server did not answer when asked about job %s (%v): it, or its storage (etcd), is likely what is sick", r.name(), err)
		}
		return ""
	}
	return classify(pod, r.j.lookAtNode(ctx, pod.Spec.NodeName), r.req.Timeout, time.Now())
}

// lookAtNode reads node and its kubelet's lease, each within lookTimeout.
func (j *Executor) lookAtNode(ctx context.Context, node string) nodeView {
	var v nodeView
	ctx = context.WithoutCancel(ctx)
	c, cancel := context.WithTimeout(ctx, lookTimeout)
	v.node, v.nodeErr = j.Client.CoreV1().Nodes().Get(c, node, metav1.GetOptions{})
	cancel()
	if v.nodeErr != nil && !apierrors.IsNotFound(v.nodeErr) && !apierrors.IsForbidden(v.nodeErr) && !apierrors.IsUnauthorized(v.nodeErr) {
		return v // the API server did not answer: no second wait for it
	}
	c, cancel = context.WithTimeout(ctx, lookTimeout)
	v.lease, v.leaseErr = j.Client.CoordinationV1().Leases("kube-node-lease").Get(c, node, metav1.GetOptions{})
	cancel()
	return v
}

// refused reports whether err is the API server's refusal or a missing
// object: it answered.
func refused(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}

// classify says which component is likely why pod (the run's, nil if it
// was never created) did not start or stopped reporting, from what the
// API server says of its node; timeout is kdiag's own --timeout. It
// returns "" when nothing points to one: the clause starts with "; ".
func classify(pod *corev1.Pod, v nodeView, timeout time.Duration, now time.Time) string {
	if pod == nil {
		return ""
	}
	if pod.Spec.NodeName == "" {
		msg := "no node was chosen for it"
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Message != "" {
				msg = c.Reason + ": " + c.Message
			}
		}
		return fmt.Sprintf("; the pod %s was never scheduled (%s): no node could take it, or the scheduler is not running", pod.Name, msg)
	}
	node := pod.Spec.NodeName
	if v.nodeErr != nil && !refused(v.nodeErr) {
		return fmt.Sprintf("; the API server did not answer when asked about node %s (%v): it, or its storage (etcd), is likely what is sick", node, v.nodeErr)
	}
	if apierrors.IsNotFound(v.nodeErr) {
		return fmt.Sprintf("; node %s of the pod %s no longer exists: the node was removed or lost", node, pod.Name)
	}
	// How the kubelet is: its lease, or lacking one the Ready condition
	// the node controller sets Unknown once the kubelet goes quiet.
	alive, known, seen := false, false, ""
	if v.lease != nil && v.lease.Spec.RenewTime != nil {
		ago := now.Sub(v.lease.Spec.RenewTime.Time)
		alive, known = ago < freshLease, true
		seen = fmt.Sprintf("its lease was renewed %s ago", ago.Round(time.Second))
	}
	if v.node != nil {
		for _, c := range v.node.Status.Conditions {
			if c.Type != corev1.NodeReady {
				continue
			}
			if c.Status == corev1.ConditionUnknown {
				// The lease, when there is one, is newer news.
				if !known {
					alive, known = false, true
				}
				seen = joinClause(seen, "node Ready is Unknown: "+c.Message)
			} else if !known {
				alive, known = c.Status == corev1.ConditionTrue, true
				seen = joinClause(seen, fmt.Sprintf("node Ready is %s", c.Status))
			}
		}
	}
	if !known {
		why := "neither its lease nor its Ready condition could be read"
		if v.nodeErr != nil {
			why += " (" + v.nodeErr.Error() + ")"
		}
		return fmt.Sprintf("; the pod %s on node %s is %s, and %s", pod.Name, node, podWhere(pod), why)
	}
	if !alive {
		return fmt.Sprintf("; the kubelet on node %s is not answering (%s): the pod's status is what it last reported (%s; on the node: systemctl status kubelet, the kubelet's log)", node, seen, podWhere(pod))
	}
	st := containerStatus(pod)
	switch {
	case pod.Status.StartTime == nil && st == nil:
		return fmt.Sprintf("; the container runtime on node %s is likely not answering: the kubelet there is alive (%s) but never reported on the pod %s (on the node: crictl info, systemctl status containerd)", node, seen, pod.Name)
	case st == nil || st.State.Waiting != nil && !stuckReasons[st.State.Waiting.Reason]:
		return fmt.Sprintf("; the container runtime on node %s may not be answering: the pod %s is still %s and the kubelet there is alive (%s); a slow image pull keeps a pod there too (on the node: crictl info, systemctl status containerd)", node, pod.Name, podWhere(pod), seen)
	case st.State.Running != nil && timeout > 0 && now.Sub(st.State.Running.StartedAt.Time) > timeout+exitSlack:
		return fmt.Sprintf("; the container runtime on node %s is likely not answering: the pod %s still shows kdiag running %s after it started, past its --timeout %s, and the kubelet there is alive (%s) but reports no change (on the node: crictl info, systemctl status containerd)",
			node, pod.Name, now.Sub(st.State.Running.StartedAt.Time).Round(time.Second), timeout, seen)
	}
	return ""
}

// podWhere says how far the pod got, as its status has it.
func podWhere(pod *corev1.Pod) string {
	st := containerStatus(pod)
	switch {
	case st == nil && pod.Status.StartTime == nil:
		return "not yet acknowledged by its kubelet (no status from it)"
	case st == nil:
		return podPending(pod)
	case st.State.Waiting != nil:
		return "waiting: " + st.State.Waiting.Reason
	case st.State.Running != nil:
		return "running"
	case st.State.Terminated != nil:
		return "terminated"
	}
	return string(pod.Status.Phase)
}

func joinClause(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// overdue ends a run whose Job is past its deadline (plus overdueAfter)
// and not marked failed, saying who did not answer: the API server, the
// pod's node, or else the Job controller.
func (r *jobRun) overdue(ctx context.Context) playbook.Outcome {
	why := fmt.Sprintf("job %s is %s past its deadline (activeDeadlineSeconds %d) and not marked failed", r.name(), overdueAfter, *r.job.Spec.ActiveDeadlineSeconds)
	s := r.sick(ctx)
	if s == "" {
		s = "; the API server answers: the Job controller (kube-controller-manager) is likely not running"
	}
	return r.ended(why + r.pendingText() + s)
}
