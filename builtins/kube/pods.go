package kube

import (
	"context"
	"strings"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// defaultContainerAnnotation is kubectl's annotation naming the container
// that logs and exec use when none is given.
const defaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// getPod fetches a typed pod, translating errors for op.
func getPod(ctx context.Context, op string, cs kubernetes.Interface, ns, name string) (*corev1.Pod, error) {
	if name == "" {
		return nil, engine.Errorf(engine.KindInvalid, "%s: empty pod name", op)
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(op, err, objName("pod", ns, name), podNeed("get", "", ns))
	}
	return p, nil
}

// containerNames lists the pod's containers: regular, then init, then
// (when withEphemeral) ephemeral ones.
func containerNames(p *corev1.Pod, withEphemeral bool) []string {
	var names []string
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if withEphemeral {
		for _, c := range p.Spec.EphemeralContainers {
			names = append(names, c.Name)
		}
	}
	return names
}

// resolveContainer returns name if the pod has such a container, or the
// default container (kubectl's annotation, else the first) when name is
// empty.
func resolveContainer(op string, p *corev1.Pod, name string, withEphemeral bool) (string, error) {
	if name == "" {
		if d := p.Annotations[defaultContainerAnnotation]; d != "" {
			for _, c := range p.Spec.Containers {
				if c.Name == d {
					return d, nil
				}
			}
		}
		if len(p.Spec.Containers) == 0 {
			return "", engine.Errorf(engine.KindInvalid, "%s: %s has no containers", op, objName("pod", p.Namespace, p.Name))
		}
		return p.Spec.Containers[0].Name, nil
	}
	names := containerNames(p, withEphemeral)
	for _, n := range names {
		if n == name {
			return name, nil
		}
	}
	return "", engine.Errorf(engine.KindNotFound, "%s: %s has no container %q (containers: %s)",
		op, objName("pod", p.Namespace, p.Name), name, strings.Join(names, ", "))
}

// containerStatus returns the status of the named container of any type.
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// podFinished reports whether the pod has terminated for good.
func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
