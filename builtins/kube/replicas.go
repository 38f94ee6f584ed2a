package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SelectPods returns the pods of namespace ns ("" for all namespaces)
// that the label selector matches, by namespace and name, for a fleet
// run. Pods being deleted are left out.
func SelectPods(ctx context.Context, cs kubernetes.Interface, ns, selector string) ([]corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pods %s in %s: %w", selector, nsWords(ns), err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return pods, nil
}

func nsWords(ns string) string {
	if ns == "" {
		return "all namespaces"
	}
	return "namespace " + ns
}

// ReplicaSelector returns the label selector of the workload that
// controls pod ns/name — its Deployment (through its ReplicaSet),
// StatefulSet, DaemonSet, ReplicaSet or Job — and the workload as
// KIND/NAME: the selector of the pod's replicas.
func ReplicaSelector(ctx context.Context, cs kubernetes.Interface, ns, name string) (selector, owner string, err error) {
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", "", fmt.Errorf("pod %s/%s not found", ns, name)
		}
		return "", "", fmt.Errorf("get pod %s/%s: %w", ns, name, err)
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return "", "", fmt.Errorf("pod %s/%s has no controller, so no replicas; name the pods with --selector", ns, name)
	}
	var sel *metav1.LabelSelector
	kind, oname := ref.Kind, ref.Name
	switch kind {
	case "ReplicaSet":
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, oname, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("get ReplicaSet %s/%s of pod %s: %w", ns, oname, name, err)
		}
		sel = rs.Spec.Selector
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
			dep, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
			if err != nil {
				return "", "", fmt.Errorf("get Deployment %s/%s of pod %s: %w", ns, d.Name, name, err)
			}
			sel, kind, oname = dep.Spec.Selector, "Deployment", d.Name
		}
	case "StatefulSet":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, oname, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("get StatefulSet %s/%s of pod %s: %w", ns, oname, name, err)
		}
		sel = s.Spec.Selector
	case "DaemonSet":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, oname, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("get DaemonSet %s/%s of pod %s: %w", ns, oname, name, err)
		}
		sel = d.Spec.Selector
	case "Job":
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, oname, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("get Job %s/%s of pod %s: %w", ns, oname, name, err)
		}
		sel = j.Spec.Selector
	default:
		return "", "", fmt.Errorf("pod %s/%s is controlled by %s %s, whose replicas kdiag cannot find; name the pods with --selector", ns, name, kind, oname)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return "", "", fmt.Errorf("%s %s/%s has no usable selector (%v); name the pods with --selector", kind, ns, oname, err)
	}
	return s.String(), kind + "/" + oname, nil
}

// WorkloadSelector returns the label selector of the pods of workload
// KIND/NAME in ns: a Deployment, StatefulSet, DaemonSet, ReplicaSet or
// Job.
func WorkloadSelector(ctx context.Context, cs kubernetes.Interface, ns, kind, name string) (string, error) {
	var sel *metav1.LabelSelector
	var err error
	switch kind {
	case "Deployment":
		var o *appsv1.Deployment
		if o, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel = o.Spec.Selector
		}
	case "StatefulSet":
		var o *appsv1.StatefulSet
		if o, err = cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel = o.Spec.Selector
		}
	case "DaemonSet":
		var o *appsv1.DaemonSet
		if o, err = cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel = o.Spec.Selector
		}
	case "ReplicaSet":
		var o *appsv1.ReplicaSet
		if o, err = cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel = o.Spec.Selector
		}
	case "Job":
		var o *batchv1.Job
		if o, err = cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel = o.Spec.Selector
		}
	default:
		return "", fmt.Errorf("%s %s/%s: kdiag finds the pods of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Job", kind, ns, name)
	}
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("%s %s/%s not found", kind, ns, name)
	}
	if err != nil {
		return "", fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return "", fmt.Errorf("%s %s/%s has no usable selector (%v)", kind, ns, name, err)
	}
	return s.String(), nil
}
