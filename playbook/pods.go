package playbook

import (
	"context"

	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine/fleet"
)

// PodResolver finds the pods of a fan-out route's set.
type PodResolver interface {
	// Pods returns the pods of namespace ns that selector matches, not
	// being deleted, sorted by name.
	Pods(ctx context.Context, ns, selector string) ([]fleet.Target, error)
	// WorkloadSelector returns the label selector of the pods of workload
	// kind/name in ns.
	WorkloadSelector(ctx context.Context, ns, kind, name string) (string, error)
	// ReplicaSelector returns the label selector of pod ns/name's
	// replicas and their controller as Kind/name.
	ReplicaSelector(ctx context.Context, ns, name string) (selector, owner string, err error)
}

// KubePods is the PodResolver over the Kubernetes API.
type KubePods struct {
	// Clients gives the API client (builtins.Config.Clients()).
	Clients kube.Clients
}

// Pods implements PodResolver.
func (k KubePods) Pods(ctx context.Context, ns, selector string) ([]fleet.Target, error) {
	cs, _, err := k.Clients.Kube()
	if err != nil {
		return nil, err
	}
	pods, err := kube.SelectPods(ctx, cs, ns, selector)
	if err != nil {
		return nil, err
	}
	out := make([]fleet.Target, len(pods))
	for i, p := range pods {
		out[i] = fleet.Target{Namespace: p.Namespace, Pod: p.Name, Node: p.Spec.NodeName}
	}
	return out, nil
}

// WorkloadSelector implements PodResolver.
func (k KubePods) WorkloadSelector(ctx context.Context, ns, kind, name string) (string, error) {
	cs, _, err := k.Clients.Kube()
	if err != nil {
		return "", err
	}
	return kube.WorkloadSelector(ctx, cs, ns, kind, name)
}

// ReplicaSelector implements PodResolver.
func (k KubePods) ReplicaSelector(ctx context.Context, ns, name string) (string, string, error) {
	cs, _, err := k.Clients.Kube()
	if err != nil {
		return "", "", err
	}
	return kube.ReplicaSelector(ctx, cs, ns, name)
}
