package kube

// Edge cases a real cluster cannot produce on demand: a cluster without
// the ephemeralcontainers subresource, a conflict between read and update.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func runningPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "httpserver-local:v1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		}},
	}
}

func specNamed(t *testing.T, specs []*engine.Spec, name string) *engine.Spec {
	t.Helper()
	for _, s := range specs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no spec %q", name)
	return nil
}

func attachArgs() engine.Args {
	return engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "command": []any{"sleep", "3600"},
		"profile": "general", "timeout": "5s", "reuse": false}
}

func TestAttachEphemeralDisabled(t *testing.T) {
	cs := fake.NewClientset(runningPod())
	cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "ephemeralcontainers" {
			return false, nil, nil
		}
		// What an API server without the subresource answers: a 404 naming nothing.
		return true, nil, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
			Message: "the server could not find the requested resource",
		}}
	})
	s := specNamed(t, Specs(StaticClients(cs, nil, "default")), "attach_ephemeral")
	_, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: attachArgs()})
	if engine.KindOf(err) != engine.KindNotFound || !strings.HasPrefix(err.Error(), "attach_ephemeral: ephemeral containers are disabled in this cluster") {
		t.Errorf("err = %v (kind %s)", err, engine.KindOf(err))
	}
}

func TestAttachEphemeralForbiddenNamesRule(t *testing.T) {
	cs := fake.NewClientset(runningPod())
	cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods/ephemeralcontainers"}, "web", nil)
	})
	s := specNamed(t, Specs(StaticClients(cs, nil, "default")), "attach_ephemeral")
	_, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: attachArgs()})
	if engine.KindOf(err) != engine.KindForbidden ||
		!strings.HasSuffix(err.Error(), `add to a Role: - apiGroups: [""] resources: ["pods/ephemeralcontainers"] verbs: ["update"]`) {
		t.Errorf("err = %v", err)
	}
}

func TestAttachEphemeralRetriesConflict(t *testing.T) {
	cs := fake.NewClientset(runningPod())
	updates := 0
	cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		if updates == 1 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web", nil)
		}
		return false, nil, nil
	})
	old := nameSuffix
	nameSuffix = func() string { return "abcde" }
	defer func() { nameSuffix = old }()
	s := specNamed(t, Specs(StaticClients(cs, nil, "default")), "attach_ephemeral")
	call := &engine.Call{Spec: s, Args: attachArgs(), DryRun: engine.DryRunServer}
	v, err := s.Run(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	r := v.(*EphemeralResult)
	if updates != 2 || r.Container != "kdiag-abcde" || r.State != "planned" || r.Spec == nil || r.Spec.TargetContainerName != "app" {
		t.Errorf("updates %d, result %+v", updates, r)
	}
}

// The engine plans a write (client dry run) before asking for approval;
// the approved call must add the container the plan named.
func TestAttachEphemeralPlanNameIsReused(t *testing.T) {
	cs := fake.NewClientset(runningPod())
	n := 0
	old := nameSuffix
	nameSuffix = func() string { n++; return fmt.Sprintf("name%d", n) }
	defer func() { nameSuffix = old }()
	s := specNamed(t, Specs(StaticClients(cs, nil, "default")), "attach_ephemeral")
	plan, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: attachArgs(), DryRun: engine.DryRunClient, Pos: "rb.star:3:5"})
	if err != nil {
		t.Fatal(err)
	}
	applied, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: attachArgs(), DryRun: engine.DryRunServer, Pos: "rb.star:3:5"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.Run(context.Background(), &engine.Call{Spec: s, Args: attachArgs(), DryRun: engine.DryRunServer, Pos: "rb.star:3:5"})
	if p, r := plan.(*EphemeralResult).Container, applied.(*EphemeralResult).Container; p != "kdiag-name1" || r != p {
		t.Errorf("plan named %s, the call added %s", p, r)
	}
	if o := other.(*EphemeralResult).Container; o != "kdiag-name2" {
		t.Errorf("a second call reused the name: %s", o)
	}
}
