package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// watchPods calls handle with the pods matching opts: each listed pod as
// Added, then (watch.Bookmark, nil) at the end of the initial list, then
// each change, until handle says done, returns an error, or ctx ends
// (ctx.Err() is returned). It runs on client-go's
// watchtools.UntilWithSync, whose reflector resumes a watch that closes
// and lists again when its resource version expired; a list or watch the
// API server refuses ends it at once with that error. Nothing waits
// without ctx's deadline.
func watchPods(ctx context.Context, op string, cs kubernetes.Interface, ns string, opts metav1.ListOptions,
	handle func(watch.EventType, *corev1.Pod) (bool, error)) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var refused error
	what := fmt.Sprintf("pods in namespace %q", ns)
	// fail ends the wait with a list or watch the API server refused; not
	// with one cut short because the informer stopped (lctx) or ctx
	// ended, nor with an expired resource version (the reflector lists
	// again).
	fail := func(lctx context.Context, err error, verb string) {
		if err == nil || lctx.Err() != nil || ctx.Err() != nil || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return
		}
		mu.Lock()
		if refused == nil {
			refused = apiError(op, err, what, podNeed(verb, "", ns))
		}
		mu.Unlock()
		cancel()
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(lctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			list, err := cs.CoreV1().Pods(ns).List(lctx, o)
			fail(lctx, err, "list")
			return list, err
		},
		WatchFuncWithContext: func(lctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			w, err := cs.CoreV1().Pods(ns).Watch(lctx, o)
			fail(lctx, err, "watch")
			return w, err
		},
	}
	listed := map[types.UID]string{} // resource versions handled from the initial list
	var handled error                // handle's error, returned as it is
	call := func(t watch.EventType, p *corev1.Pod) (bool, error) {
		done, err := handle(t, p)
		if err != nil {
			handled = err
		}
		return done, err
	}
	initial := func(store cache.Store) (bool, error) {
		pods := make([]*corev1.Pod, 0, len(store.List()))
		for _, o := range store.List() {
			if p, ok := o.(*corev1.Pod); ok {
				pods = append(pods, p)
			}
		}
		slices.SortFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
		for _, p := range pods {
			listed[p.UID] = p.ResourceVersion
			if done, err := call(watch.Added, p); done || err != nil {
				return true, err
			}
		}
		return call(watch.Bookmark, nil) // end of the initial list
	}
	change := func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if rv, ok := listed[p.UID]; ok && ev.Type == watch.Added && rv == p.ResourceVersion {
			return false, nil // the informer's replay of the initial list, handled above
		}
		return call(ev.Type, p)
	}
	// A fake clientset (unit tests) cannot stream the initial list.
	_, err := watchtools.UntilWithSync(wctx, cache.ToListWatcherWithWatchListSemantics(lw, cs), &corev1.Pod{}, initial, change)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case handled != nil:
		return handled
	case err == nil:
		return nil
	case refused != nil:
		return refused
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
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
