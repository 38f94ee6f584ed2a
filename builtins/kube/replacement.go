package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// replacementWait bounds how long restart waits for a controller to
// create the pod that replaces a deleted one.
const replacementWait = 30 * time.Second

// workloadOf returns, for a pod's controller, the workload a person names
// (a Deployment rather than its ReplicaSet) and the controller's label
// selector. Errors leave them empty: the caller says what is unknown.
func workloadOf(ctx context.Context, cs kubernetes.Interface, ns string, ref *metav1.OwnerReference) (workload, selector string) {
	workload = ref.Kind + "/" + ref.Name
	var sel *metav1.LabelSelector
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return workload, ""
		}
		if o := metav1.GetControllerOf(rs); o != nil && o.Kind == "Deployment" {
			workload = "Deployment/" + o.Name
		}
		sel = rs.Spec.Selector
	case "StatefulSet":
		if s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			sel = s.Spec.Selector
		}
	case "DaemonSet":
		if d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			sel = d.Spec.Selector
		}
	case "Job":
		if j, err := cs.BatchV1().Jobs(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			sel = j.Spec.Selector
		}
	case "ReplicationController":
		if rc, err := cs.CoreV1().ReplicationControllers(ns).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			return workload, labels.SelectorFromSet(rc.Spec.Selector).String()
		}
	}
	if sel == nil {
		return workload, ""
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return workload, ""
	}
	return workload, s.String()
}

// awaitReplacement waits for the pod that the controller owner creates in
// place of old: a pod of the same controller that did not exist before
// (existing), not being deleted. It returns nil when none appeared in time.
func awaitReplacement(ctx context.Context, cs kubernetes.Interface, old *corev1.Pod, owner types.UID, selector string, existing map[types.UID]bool) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, replacementWait)
	defer cancel()
	var found *corev1.Pod
	err := watchPods(ctx, "restart", cs, old.Namespace, metav1.ListOptions{LabelSelector: selector}, func(_ watch.EventType, p *corev1.Pod) (bool, error) {
		if p == nil || existing[p.UID] || p.DeletionTimestamp != nil {
			return false, nil
		}
		if c := metav1.GetControllerOf(p); c != nil && c.UID == owner {
			found = p
			return true, nil
		}
		return false, nil
	})
	switch {
	case found != nil:
		return found, nil
	case ctx.Err() != nil:
		return nil, nil
	}
	return nil, err
}

// existingPods returns the uids of the pods selector matches now.
func existingPods(ctx context.Context, cs kubernetes.Interface, ns, selector string) (map[types.UID]bool, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := map[types.UID]bool{}
	for _, p := range list.Items {
		out[p.UID] = true
	}
	return out, nil
}

// replacementNote says what replaces a deleted controlled pod.
func replacementNote(workload string, p *corev1.Pod) string {
	if p == nil {
		return fmt.Sprintf("%s creates a replacement pod; none appeared within %s (wait_ready(selector=...) waits for it)", workload, replacementWait)
	}
	return fmt.Sprintf("%s replaced it with pod %s", workload, p.Name)
}
