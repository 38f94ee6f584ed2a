package kube

import (
	"context"
	"fmt"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
)

// Diagnosis is what pod_diagnosis returns.
type Diagnosis struct {
	Pod            string          `json:"pod"`
	Namespace      string          `json:"namespace"`
	UID            string          `json:"uid"`
	Node           string          `json:"node"`
	Phase          string          `json:"phase"`
	Reason         string          `json:"reason,omitempty"`
	Message        string          `json:"message,omitempty"`
	Ready          string          `json:"ready"`
	Terminating    bool            `json:"terminating"`
	Owner          string          `json:"owner,omitempty"`
	Conditions     []Condition     `json:"conditions"`
	Containers     []ContainerDiag `json:"containers"`
	InitContainers []ContainerDiag `json:"init_containers,omitempty"`
	Ephemeral      []ContainerDiag `json:"ephemeral_containers,omitempty"`
	ProbeFailures  []ProbeFailure  `json:"probe_failures"`
	Warnings       []Event         `json:"warnings"`
	EventsError    string          `json:"events_error,omitempty"`
	Problems       []string        `json:"problems"`
}

// Condition is one pod condition.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Since   string `json:"since,omitempty"`
}

// ContainerDiag describes one container of a diagnosed pod.
type ContainerDiag struct {
	Name            string            `json:"name"`
	Image           string            `json:"image"`
	Ready           bool              `json:"ready"`
	State           string            `json:"state"`
	Reason          string            `json:"reason,omitempty"`
	Message         string            `json:"message,omitempty"`
	ExitCode        *int32            `json:"exit_code,omitempty"`
	StartedAt       string            `json:"started_at,omitempty"`
	Restarts        int32             `json:"restarts"`
	LastTermination *Termination      `json:"last_termination"`
	ReadinessProbe  *ProbeInfo        `json:"readiness_probe"`
	LivenessProbe   *ProbeInfo        `json:"liveness_probe"`
	StartupProbe    *ProbeInfo        `json:"startup_probe"`
	Ports           []Port            `json:"ports"`
	VolumeMounts    []Mount           `json:"volume_mounts"`
	Limits          map[string]string `json:"limits,omitempty"`
	Requests        map[string]string `json:"requests,omitempty"`
	Target          string            `json:"target,omitempty"`
	// ContainerID is the runtime's ID of the current instance, without the
	// runtime's scheme ("containerd://"), for find_pid(container_id=...).
	ContainerID string `json:"container_id,omitempty"`
}

// Termination is how a container instance ended.
type Termination struct {
	Reason     string `json:"reason"`
	ExitCode   int32  `json:"exit_code"`
	Signal     int32  `json:"signal,omitempty"`
	Message    string `json:"message,omitempty"`
	StartedAt  string `json:"started_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
}

// Port is a declared container port.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"container_port"`
	Protocol      string `json:"protocol"`
}

// Mount is a volume mount with the volume it mounts.
type Mount struct {
	Name      string        `json:"name"`
	MountPath string        `json:"mount_path"`
	SubPath   string        `json:"sub_path,omitempty"`
	ReadOnly  bool          `json:"read_only"`
	Source    *VolumeSource `json:"source"`
}

// VolumeSource says where a volume's content comes from.
type VolumeSource struct {
	// Kind is configmap, secret, emptydir, hostpath, pvc, projected,
	// downwardapi or other.
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"`
	Path     string    `json:"path,omitempty"`
	Items    []KeyPath `json:"items,omitempty"`
	Optional bool      `json:"optional,omitempty"`
}

// KeyPath maps a ConfigMap or Secret key to a file.
type KeyPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
}

// ProbeFailure is a probe failure reported by the kubelet as an event.
type ProbeFailure struct {
	Container string `json:"container"`
	Probe     string `json:"probe"`
	Message   string `json:"message"`
	Count     int32  `json:"count"`
	LastSeen  string `json:"last_seen"`
}

// podDiagnosisBuiltin is pod_diagnosis and the API permissions it needs.
var podDiagnosisBuiltin = builtin{
	spec: (*kube).podDiagnosisSpec,
	needs: func(ns string) []Need {
		return []Need{podNeed("get", "", ns), {Verb: "list", Resource: "events", Namespace: ns}}
	},
}

func (k *kube) podDiagnosisSpec() *engine.Spec {
	return &engine.Spec{
		Name: "pod_diagnosis",
		Doc: "pod_diagnosis summarizes why a pod is not healthy: phase, conditions, each container's " +
			"state, restarts and last termination, probes (named ports resolved), volume mounts and their sources, " +
			"probe failures and warnings from events, and a list of problems in plain words.",
		Params: []engine.Param{
			{Name: "pod", Type: "string", Required: true, Doc: "pod name"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
		},
		Result: "pod, namespace, uid, node, phase, reason, message: the pod\n" +
			"ready: ready containers over containers, e.g. \"1/2\"\nterminating: deletion requested\n" +
			"owner: controlling owner, e.g. ReplicaSet/web-7d9f\nconditions: [{type, status, reason, message, since}]\n" +
			"containers, init_containers, ephemeral_containers: [{name, image, ready, state (waiting/running/terminated), reason, message, " +
			"exit_code, restarts, last_termination {reason, exit_code, signal, finished_at}, readiness_probe/liveness_probe/startup_probe " +
			"{type (http/tcp/exec/grpc), path, port, port_name, scheme, command, period...}, ports, " +
			"volume_mounts [{name, mount_path, sub_path, read_only, source {kind, name, items}}], limits, requests, container_id (for find_pid when the runtime does not answer)}]\n" +
			"probe_failures: [{container, probe, message, count, last_seen}] from Unhealthy events\n" +
			"warnings: other Warning events\nevents_error: why events could not be read, if so\n" +
			"problems: the findings in plain words",
		Effect:  engine.Read,
		Timeout: apiReadTimeout,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			cs, _, err := k.client("pod_diagnosis")
			if err != nil {
				return nil, err
			}
			ns, name := k.namespace(c), c.Args.String("pod")
			pod, err := getPod(ctx, "pod_diagnosis", cs, ns, name)
			if err != nil {
				return nil, err
			}
			ki, _ := lookupKind("pod")
			evs, err := objectEvents(ctx, "pod_diagnosis", cs, ki, ns, name)
			evErr := ""
			if err != nil {
				if engine.KindOf(err) != engine.KindForbidden {
					return nil, err
				}
				evErr = err.Error()
			}
			return diagnose(pod, evs, evErr), nil
		},
	}
}

// diagnose builds the Diagnosis of a pod from the pod and its events.
func diagnose(p *corev1.Pod, evs []Event, evErr string) *Diagnosis {
	d := &Diagnosis{
		Pod: p.Name, Namespace: p.Namespace, UID: string(p.UID), Node: p.Spec.NodeName,
		Phase: string(p.Status.Phase), Reason: p.Status.Reason, Message: p.Status.Message,
		Terminating: p.DeletionTimestamp != nil, EventsError: evErr,
		Conditions: []Condition{}, ProbeFailures: []ProbeFailure{}, Warnings: []Event{}, Problems: []string{},
	}
	if ref := controllerOf(p); ref != nil {
		d.Owner = ref.Kind + "/" + ref.Name
	}
	for _, c := range p.Status.Conditions {
		d.Conditions = append(d.Conditions, Condition{
			Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			Since: rfc3339(c.LastTransitionTime.Time),
		})
	}
	ready := 0
	for i := range p.Spec.Containers {
		cd := describeContainer(p, &p.Spec.Containers[i])
		if cd.Ready {
			ready++
		}
		d.Containers = append(d.Containers, cd)
	}
	d.Ready = fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
	for i := range p.Spec.InitContainers {
		d.InitContainers = append(d.InitContainers, describeContainer(p, &p.Spec.InitContainers[i]))
	}
	for i := range p.Spec.EphemeralContainers {
		ec := &p.Spec.EphemeralContainers[i]
		cd := describeContainer(p, (*corev1.Container)(&ec.EphemeralContainerCommon))
		cd.Target = ec.TargetContainerName
		d.Ephemeral = append(d.Ephemeral, cd)
	}
	for _, e := range evs {
		if f, ok := probeFailure(e); ok {
			d.ProbeFailures = append(d.ProbeFailures, f)
			continue
		}
		if e.Type == corev1.EventTypeWarning {
			d.Warnings = append(d.Warnings, e)
		}
	}
	d.Problems = problems(p, d)
	return d
}

func controllerOf(p *corev1.Pod) *struct{ Kind, Name string } {
	for _, r := range p.OwnerReferences {
		if r.Controller != nil && *r.Controller {
			return &struct{ Kind, Name string }{r.Kind, r.Name}
		}
	}
	return nil
}
