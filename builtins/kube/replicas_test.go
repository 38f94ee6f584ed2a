package kube

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// TestReplicaSelector walks each kind of controller a pod can have to the
// selector of its replicas. The chain through a ReplicaSet to its
// Deployment runs against a real cluster in test/e2e's TestFleetRun;
// these are the kinds that test does not create.
func TestReplicaSelector(t *testing.T) {
	yes := true
	owned := func(name, kind, owner string) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Namespace: "ns"}
		if kind != "" {
			m.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: owner, Controller: &yes}}
		}
		return m
	}
	sel := func(k, v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	objs := []runtime.Object{
		&corev1.Pod{ObjectMeta: owned("dep-pod", "ReplicaSet", "web-1")},
		&appsv1.ReplicaSet{ObjectMeta: owned("web-1", "Deployment", "web"), Spec: appsv1.ReplicaSetSpec{Selector: sel("app", "web-rs")}},
		&appsv1.Deployment{ObjectMeta: owned("web", "", ""), Spec: appsv1.DeploymentSpec{Selector: sel("app", "web")}},
		&corev1.Pod{ObjectMeta: owned("rs-pod", "ReplicaSet", "lone")},
		&appsv1.ReplicaSet{ObjectMeta: owned("lone", "", ""), Spec: appsv1.ReplicaSetSpec{Selector: sel("app", "lone")}},
		&corev1.Pod{ObjectMeta: owned("db-0", "StatefulSet", "db")},
		&appsv1.StatefulSet{ObjectMeta: owned("db", "", ""), Spec: appsv1.StatefulSetSpec{Selector: sel("app", "db")}},
		&corev1.Pod{ObjectMeta: owned("agent-x", "DaemonSet", "agent")},
		&appsv1.DaemonSet{ObjectMeta: owned("agent", "", ""), Spec: appsv1.DaemonSetSpec{Selector: sel("app", "agent")}},
		&corev1.Pod{ObjectMeta: owned("batch-x", "Job", "batch")},
		&batchv1.Job{ObjectMeta: owned("batch", "", ""), Spec: batchv1.JobSpec{Selector: sel("batch.kubernetes.io/controller-uid", "u1")}},
		&corev1.Pod{ObjectMeta: owned("bare", "", "")},
		&corev1.Pod{ObjectMeta: owned("custom", "Rollout", "r")},
		&corev1.Pod{ObjectMeta: owned("orphan", "StatefulSet", "gone")},
		&corev1.Pod{ObjectMeta: owned("empty-sel", "ReplicaSet", "empty")},
		&appsv1.ReplicaSet{ObjectMeta: owned("empty", "", ""), Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{}}},
	}
	cs := fake.NewSimpleClientset(objs...)
	for _, tc := range []struct{ pod, sel, owner, err string }{
		{"dep-pod", "app=web", "Deployment/web", ""},
		{"rs-pod", "app=lone", "ReplicaSet/lone", ""},
		{"db-0", "app=db", "StatefulSet/db", ""},
		{"agent-x", "app=agent", "DaemonSet/agent", ""},
		{"batch-x", "batch.kubernetes.io/controller-uid=u1", "Job/batch", ""},
		{"bare", "", "", "pod ns/bare has no controller, so no replicas; name the pods with --selector"},
		{"custom", "", "", "pod ns/custom is controlled by Rollout r, whose replicas kdiag cannot find"},
		{"orphan", "", "", "get StatefulSet ns/gone of pod orphan"},
		{"empty-sel", "", "", "ReplicaSet ns/empty has no usable selector"},
		{"nosuch", "", "", "pod ns/nosuch not found"},
	} {
		s, owner, err := ReplicaSelector(context.Background(), cs, "ns", tc.pod)
		if s != tc.sel || owner != tc.owner || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q %q %v; want %q %q %q", tc.pod, s, owner, err, tc.sel, tc.owner, tc.err)
		}
	}
}

// TestWorkloadSelector reads each kind of workload's selector, as kdiag
// serve's fan-out routes name them. A Deployment's runs against a real
// cluster in test/e2e's TestPlaybookFanout; these are the other kinds
// and the errors.
func TestWorkloadSelector(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "ns"} }
	sel := func(k, v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	cs := fake.NewSimpleClientset(
		&appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Selector: sel("app", "web")}},
		&appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{Selector: sel("app", "db")}},
		&appsv1.DaemonSet{ObjectMeta: meta("agent"), Spec: appsv1.DaemonSetSpec{Selector: sel("app", "agent")}},
		&appsv1.ReplicaSet{ObjectMeta: meta("lone"), Spec: appsv1.ReplicaSetSpec{Selector: sel("app", "lone")}},
		&batchv1.Job{ObjectMeta: meta("batch"), Spec: batchv1.JobSpec{Selector: sel("batch.kubernetes.io/controller-uid", "u1")}},
		&appsv1.Deployment{ObjectMeta: meta("empty"), Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "other"}, Spec: appsv1.DeploymentSpec{Selector: sel("app", "elsewhere")}},
	)
	for _, tc := range []struct{ kind, name, sel, err string }{
		{"Deployment", "web", "app=web", ""},
		{"StatefulSet", "db", "app=db", ""},
		{"DaemonSet", "agent", "app=agent", ""},
		{"ReplicaSet", "lone", "app=lone", ""},
		{"Job", "batch", "batch.kubernetes.io/controller-uid=u1", ""},
		{"Deployment", "empty", "", "Deployment ns/empty has no usable selector"},
		{"Deployment", "nosuch", "", "Deployment ns/nosuch not found"},
		{"CronJob", "x", "", "CronJob ns/x: kdiag finds the pods of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Job"},
	} {
		s, err := WorkloadSelector(context.Background(), cs, "ns", tc.kind, tc.name)
		if s != tc.sel || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s/%s: %q %v; want %q %q", tc.kind, tc.name, s, err, tc.sel, tc.err)
		}
	}
}
