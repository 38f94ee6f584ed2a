package kube

// Edge cases of watchPods a real API server does not produce on demand:
// a watch whose resource version expired (410), a list refused.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func withReady(p *corev1.Pod, ready corev1.ConditionStatus) *corev1.Pod {
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
	return p
}

// TestWatchPodsRelistsAfterExpiry: the first watch ends with 410 Expired
// while the pod became ready; the wait lists again and sees it, instead
// of failing or missing the change.
func TestWatchPodsRelistsAfterExpiry(t *testing.T) {
	cs := fake.NewClientset(withReady(runningPod(), corev1.ConditionFalse))
	var lists, watches atomic.Int32
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	expired := watch.NewFake()
	cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		if watches.Add(1) > 1 {
			return false, nil, nil // the tracker's own watch
		}
		go func() {
			ready := withReady(runningPod(), corev1.ConditionTrue)
			if err := cs.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ready, "default"); err != nil {
				t.Error(err)
			}
			expired.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"})
		}()
		return true, expired, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	err := watchPods(ctx, "wait_ready", cs, "default", metav1.ListOptions{}, func(t watch.EventType, p *corev1.Pod) (bool, error) {
		if p == nil {
			seen = append(seen, "listed")
			return false, nil
		}
		seen = append(seen, string(t)+" ready="+string(p.Status.Conditions[0].Status))
		return podReady(p), nil
	})
	if err != nil {
		t.Fatalf("watchPods: %v (saw %v)", err, seen)
	}
	if lists.Load() < 2 || watches.Load() < 1 {
		t.Errorf("%d lists and %d watches: the expired watch was not followed by a new list", lists.Load(), watches.Load())
	}
	if want := []string{"ADDED ready=False", "listed", "MODIFIED ready=True"}; strings.Join(seen, ", ") != strings.Join(want, ", ") {
		t.Errorf("handled %v, want %v", seen, want)
	}
}

// TestWatchPodsRefusedList: a list the API server refuses ends the wait
// at once with the permission to add, not at its deadline.
func TestWatchPodsRefusedList(t *testing.T) {
	cs := fake.NewClientset(runningPod())
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", nil)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := watchPods(ctx, "wait_ready", cs, "shop", metav1.ListOptions{}, func(watch.EventType, *corev1.Pod) (bool, error) {
		t.Error("handled a pod of a refused list")
		return true, nil
	})
	want := `wait_ready: forbidden: `
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `add to a Role: - apiGroups: [""] resources: ["pods"] verbs: ["list"]`) {
		t.Fatalf("err %v, want %s... naming the list permission", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s", d)
	}
}
