package job

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestSick checks what an overdue run's error says of its pod's node,
// from what a (fake) API server answers: the scheduler, a lost node, a
// quiet kubelet (stale lease, or Ready Unknown without a lease), a hung
// runtime (the kubelet alive but silent on the pod, a pod still
// creating, a container shown running past kdiag's --timeout), the API
// server not answering, and what is not enough to name anything.
func TestSick(t *testing.T) {
	now := time.Now()
	const node = "n1"
	nodeObj := func(ready corev1.ConditionStatus, msg string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready, Message: msg}}}}
	}
	lease := func(ago time.Duration) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: "kube-node-lease"},
			Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: now.Add(-ago)}}}
	}
	pod := func(mod func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kdiag-run-x-abcde", Namespace: "runs"}, Spec: corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodPending}}
		if mod != nil {
			mod(p)
		}
		return p
	}
	started := func(p *corev1.Pod) { p.Status.StartTime = &metav1.Time{Time: now.Add(-time.Minute)} }
	waiting := func(reason string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			started(p)
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "kdiag", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}}
		}
	}
	running := func(ago time.Duration) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			started(p)
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "kdiag", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: now.Add(-ago)}}}}}
		}
	}
	gr := schema.GroupResource{Resource: "nodes"}
	for _, c := range []struct {
		name    string
		pod     *corev1.Pod
		objs    []runtime.Object
		nodeErr error // returned by every get of the node
		leaseEr error // returned by every get of the lease
		want    []string
		reads   int // API reads made (0: not checked)
	}{
		{name: "no pod", pod: nil, want: nil},
		{name: "unscheduled", pod: pod(func(p *corev1.Pod) {
			p.Spec.NodeName = ""
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available"}}
		}), want: []string{"was never scheduled (Unschedulable: 0/1 nodes are available)", "scheduler"}},
		{name: "api server silent", pod: pod(nil), nodeErr: errors.New(`Get "https://127.0.0.1:6443/api/v1/nodes/n1": context deadline exceeded`),
			want: []string{"the API server did not answer when asked about node n1", "context deadline exceeded", "etcd"}, reads: 1},
		{name: "api server timeout status", pod: pod(nil), nodeErr: apierrors.NewTimeoutError("request did not complete", 1),
			want: []string{"the API server did not answer"}, reads: 1},
		{name: "node gone", pod: pod(nil), objs: []runtime.Object{lease(time.Minute)}, want: []string{"node n1 of the pod kdiag-run-x-abcde no longer exists"}},
		{name: "kubelet frozen (stale lease)", pod: pod(running(10 * time.Second)), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(45 * time.Second)},
			want: []string{"the kubelet on node n1 is not answering (its lease was renewed 45s ago)", "(running; on the node: systemctl status kubelet"}, reads: 2},
		{name: "kubelet frozen before the pod (Ready Unknown, no lease)", pod: pod(nil), objs: []runtime.Object{nodeObj(corev1.ConditionUnknown, "Kubelet stopped posting node status.")},
			want: []string{"the kubelet on node n1 is not answering (node Ready is Unknown: Kubelet stopped posting node status.)", "not yet acknowledged by its kubelet"}},
		{name: "kubelet back (fresh lease, Ready still Unknown), runtime silent", pod: pod(nil),
			objs: []runtime.Object{nodeObj(corev1.ConditionUnknown, "Kubelet stopped posting node status."), lease(2 * time.Second)},
			want: []string{"the container runtime on node n1 is likely not answering: the kubelet there is alive (its lease was renewed 2s ago; node Ready is Unknown", "never reported on the pod"}},
		{name: "runtime silent, pod never acknowledged", pod: pod(nil), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)},
			want: []string{"the container runtime on node n1 is likely not answering", "never reported on the pod kdiag-run-x-abcde"}},
		{name: "runtime silent, ContainerCreating", pod: pod(waiting("ContainerCreating")), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)},
			want: []string{"the container runtime on node n1 may not be answering: the pod kdiag-run-x-abcde is still waiting: ContainerCreating", "slow image pull"}},
		{name: "no container status yet, pod started", pod: pod(started), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)},
			want: []string{"may not be answering: the pod kdiag-run-x-abcde is still Pending"}},
		{name: "image never pulled (said at once elsewhere)", pod: pod(waiting("ErrImageNeverPull")), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)}, want: nil},
		{name: "runtime silent on an ended container", pod: pod(running(2 * time.Minute)), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)},
			want: []string{"the container runtime on node n1 is likely not answering: the pod kdiag-run-x-abcde still shows kdiag running 2m0s after it started, past its --timeout 1m0s"}},
		{name: "running within its timeout", pod: pod(running(30 * time.Second)), objs: []runtime.Object{nodeObj(corev1.ConditionTrue, ""), lease(3 * time.Second)}, want: nil},
		{name: "lease only (nodes forbidden), fresh", pod: pod(nil), objs: []runtime.Object{lease(time.Second)}, nodeErr: apierrors.NewForbidden(gr, node, errors.New("no")),
			want: []string{"the container runtime on node n1 is likely not answering"}},
		{name: "nothing readable", pod: pod(nil), nodeErr: apierrors.NewForbidden(gr, node, errors.New("no")), leaseEr: apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, node, errors.New("no")),
			want: []string{"is not yet acknowledged by its kubelet (no status from it), and neither its lease nor its Ready condition could be read", "forbidden"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset(c.objs...)
			reads := 0
			cs.PrependReactor("get", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				reads++
				switch {
				case a.GetResource().Resource == "nodes" && c.nodeErr != nil:
					return true, nil, c.nodeErr
				case a.GetResource().Resource == "leases" && c.leaseEr != nil:
					return true, nil, c.leaseEr
				}
				return false, nil, nil
			})
			j := &Executor{Client: cs}
			v := nodeView{}
			if c.pod != nil && c.pod.Spec.NodeName != "" {
				v = j.lookAtNode(context.Background(), c.pod.Spec.NodeName)
			}
			got := classify(c.pod, v, time.Minute, now)
			if c.want == nil && got != "" {
				t.Errorf("got %q; want nothing named", got)
			}
			for _, w := range c.want {
				if !strings.HasPrefix(got, "; ") || !strings.Contains(got, w) {
					t.Errorf("got %q; want it to say %q", got, w)
				}
			}
			if c.reads > 0 && reads != c.reads {
				t.Errorf("%d API reads; want %d", reads, c.reads)
			}
		})
	}
}

// TestOverdue: a Job past its deadline that is never marked failed ends
// the run anyway, naming the API server when it does not answer a read of
// the Job, the Job controller when it does.
func TestOverdue(t *testing.T) {
	defer func(d time.Duration) { overdueAfter = d }(overdueAfter)
	overdueAfter = 500 * time.Millisecond
	for _, c := range []struct {
		name   string
		getErr error
		want   string
	}{
		{"api server silent", errors.New("context deadline exceeded"), "the API server did not answer when asked about job runs/kdiag-run-x (context deadline exceeded)"},
		{"job controller down", nil, "the Job controller (kube-controller-manager) is likely not running"},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "kdiag-run-x", Namespace: "runs"}, Spec: batchv1.JobSpec{ActiveDeadlineSeconds: ptr(int64(1))}}
			cs := fake.NewClientset(job)
			cs.PrependReactor("get", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
				return c.getErr != nil, nil, c.getErr
			})
			j := &Executor{Client: cs, Poll: 100 * time.Millisecond}
			start := time.Now()
			out := j.follow(context.Background(), job, playbook.RunRequest{ID: "x", TranscriptPath: filepath.Join(t.TempDir(), "t.jsonl")}, make([]byte, 32))
			if out.Status != playbook.StatusFailed || !strings.Contains(out.Message, "job runs/kdiag-run-x is 500ms past its deadline (activeDeadlineSeconds 1) and not marked failed; ") || !strings.Contains(out.Message, c.want) {
				t.Errorf("outcome %+v; want failed, overdue, saying %q", out, c.want)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}

// TestDeleteJobRetries: deleting a run's Job retries while the API server
// does not answer, stops at a refusal, and, given up, says the Job is
// left behind and how to delete it.
func TestDeleteJobRetries(t *testing.T) {
	defer func(f, r time.Duration) { deleteFor, deleteRetry = f, r }(deleteFor, deleteRetry)
	deleteFor, deleteRetry = time.Second, 10*time.Millisecond
	silent := errors.New("http2: client connection lost")
	for _, c := range []struct {
		name      string
		errs      []error // of the deletes, in turn; nil once they run out
		wantTries int     // 0: many
		want      string
	}{
		{"answers after two tries", []error{silent, silent}, 3, ""},
		{"refused", []error{apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "kdiag-run-x", errors.New("no"))}, 1, "forbidden"},
		{"never answers", nil, 0, "delete job runs/kdiag-run-x: http2: client connection lost (it is left behind: kubectl delete job -n runs kdiag-run-x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "kdiag-run-x", Namespace: "runs"}}
			cs := fake.NewClientset(job)
			tries := 0
			cs.PrependReactor("delete", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
				tries++
				if c.errs == nil {
					return true, nil, silent
				}
				if tries <= len(c.errs) {
					return true, nil, c.errs[tries-1]
				}
				return false, nil, nil
			})
			err := (&Executor{Client: cs}).deleteJob(job)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("err %v; want %q", err, c.want)
			}
			if c.wantTries > 0 && tries != c.wantTries || c.wantTries == 0 && tries < 5 {
				t.Errorf("%d tries; want %d (0: many)", tries, c.wantTries)
			}
		})
	}
}
