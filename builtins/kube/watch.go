package kube

import (
	"context"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// watchPods lists the pods matching opts and then watches them, calling
// handle for each listed pod (as Added) and each change, until handle
// says done, returns an error, or ctx ends (ctx.Err() is returned). A
// watch that closes or expires is resumed; nothing waits without ctx's
// deadline.
func watchPods(ctx context.Context, op string, cs kubernetes.Interface, ns string, opts metav1.ListOptions,
	handle func(watch.EventType, *corev1.Pod) (bool, error)) error {
	relist := true
	rv := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if relist {
			list, err := cs.CoreV1().Pods(ns).List(ctx, opts)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return apiError(op, err, fmt.Sprintf("pods in namespace %q", ns), podNeed("list", "", ns))
			}
			for i := range list.Items {
				done, err := handle(watch.Added, &list.Items[i])
				if done || err != nil {
					return err
				}
			}
			done, err := handle(watch.Bookmark, nil) // end of the initial list
			if done || err != nil {
				return err
			}
			rv, relist = list.ResourceVersion, false
		}
		wo := opts
		wo.ResourceVersion = rv
		wo.AllowWatchBookmarks = true
		w, err := cs.CoreV1().Pods(ns).Watch(ctx, wo)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return apiError(op, err, fmt.Sprintf("pods in namespace %q", ns), podNeed("watch", "", ns))
		}
		done, err := drain(ctx, w, &rv, &relist, handle)
		w.Stop()
		if done || err != nil {
			return err
		}
	}
}

// drain reads one watch until it closes; it sets relist when the resource
// version expired.
func drain(ctx context.Context, w watch.Interface, rv *string, relist *bool,
	handle func(watch.EventType, *corev1.Pod) (bool, error)) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Error:
				if st, ok := ev.Object.(*metav1.Status); ok && st.Code == 410 {
					*relist = true
					return false, nil
				}
				return false, apierrors.FromObject(ev.Object)
			case watch.Bookmark:
				if p, ok := ev.Object.(*corev1.Pod); ok {
					*rv = p.ResourceVersion
				}
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			*rv = p.ResourceVersion
			if done, err := handle(ev.Type, p); done || err != nil {
				return done, err
			}
		}
	}
}

// ctxError turns the end of ctx into a timeout or cancellation error.
func ctxError(ctx context.Context, op, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if ctx.Err() == context.Canceled {
		return engine.Errorf(engine.KindCancelled, "%s: cancelled: %s", op, msg)
	}
	return engine.Errorf(engine.KindTimeout, "%s: %s", op, msg)
}

// waitGone waits until the pod (this uid) no longer exists.
func waitGone(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) error {
	const op = "restart"
	ref := objName("pod", pod.Namespace, pod.Name)
	present := false
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()}
	err := watchPods(ctx, op, cs, pod.Namespace, opts, func(t watch.EventType, p *corev1.Pod) (bool, error) {
		switch {
		case p == nil: // end of the initial list
			return !present, nil
		case p.UID != pod.UID:
			return true, nil
		case t == watch.Deleted:
			return true, nil
		}
		present = true
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return ctxError(ctx, op, "%s is still terminating after %s; it was not recreated (its spec is in the transcript's before-state)", ref, timeout)
	}
	return err
}
