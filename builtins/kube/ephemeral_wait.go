package kube

import (
	"context"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// waitEphemeral waits until the ephemeral container res.Container runs or
// terminates, collecting its Waiting reasons into res as they change. When
// ctx ends first it fails with KindTimeout naming the last reason.
func waitEphemeral(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, res *EphemeralResult, timeout time.Duration) error {
	const op = "attach_ephemeral"
	podRef := objName("pod", pod.Namespace, pod.Name)
	check := func(p *corev1.Pod) bool {
		st := containerStatus(p, res.Container)
		if st == nil {
			return false
		}
		switch s := st.State; {
		case s.Running != nil:
			res.State = "running"
			return true
		case s.Terminated != nil:
			res.State, res.Reason = "terminated", s.Terminated.Reason
			code := s.Terminated.ExitCode
			res.ExitCode = &code
			return true
		case s.Waiting != nil && s.Waiting.Reason != "":
			w := WaitingReason{Reason: s.Waiting.Reason, Message: s.Waiting.Message}
			if n := len(res.WaitingReasons); n == 0 || res.WaitingReasons[n-1] != w {
				res.WaitingReasons = append(res.WaitingReasons, w)
			}
		}
		return false
	}
	if check(pod) {
		return nil
	}
	seen := false
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()}
	err := watchPods(ctx, op, cs, pod.Namespace, opts, func(t watch.EventType, p *corev1.Pod) (bool, error) {
		if p == nil { // end of the initial list
			if !seen {
				return false, engine.Errorf(engine.KindGone, "%s: %s was deleted while ephemeral container %s was starting", op, podRef, res.Container)
			}
			return false, nil
		}
		seen = true
		if t == watch.Deleted || p.UID != pod.UID {
			return false, engine.Errorf(engine.KindGone, "%s: %s was deleted while ephemeral container %s was starting", op, podRef, res.Container)
		}
		if p.DeletionTimestamp != nil && podFinished(p) {
			return false, engine.Errorf(engine.KindGone, "%s: %s finished while ephemeral container %s was starting", op, podRef, res.Container)
		}
		return check(p), nil
	})
	if err == nil || engine.KindOf(err) != engine.KindFailed {
		return err
	}
	if ctx.Err() == nil {
		return err
	}
	last := "no status reported yet"
	if n := len(res.WaitingReasons); n > 0 {
		w := res.WaitingReasons[n-1]
		last = "last waiting reason " + w.Reason
		if w.Message != "" {
			last += ": " + w.Message
		}
	}
	return ctxError(ctx, op, "ephemeral container %s in %s is not running after %s (%s); it stays in the pod (ephemeral containers cannot be removed)",
		res.Container, podRef, timeout, last)
}
