package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// nameSuffix returns the random part of a debug container's name; tests
// replace it.
var nameSuffix = func() string { return utilrand.String(5) }

// debugPrefix starts the name of every ephemeral container kdiag adds.
const debugPrefix = "kdiag-"

// EphemeralResult is what attach_ephemeral returns.
type EphemeralResult struct {
	Pod            string                     `json:"pod"`
	Namespace      string                     `json:"namespace"`
	Container      string                     `json:"container"`
	Target         string                     `json:"target"`
	Image          string                     `json:"image"`
	State          string                     `json:"state"`
	Reason         string                     `json:"reason,omitempty"`
	ExitCode       *int32                     `json:"exit_code,omitempty"`
	WaitingReasons []WaitingReason            `json:"waiting_reasons"`
	Reused         bool                       `json:"reused"`
	DryRun         string                     `json:"dry_run,omitempty"`
	Spec           *corev1.EphemeralContainer `json:"spec,omitempty"`
	Note           string                     `json:"note"`
}

// WaitingReason is one Waiting state the container went through.
type WaitingReason struct {
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// attachEphemeralBuiltin is attach_ephemeral and the API permissions it needs.
var attachEphemeralBuiltin = builtin{
	spec: (*kube).attachEphemeralSpec,
	needs: func(ns string) []Need {
		return []Need{podNeed("get", "", ns), podNeed("update", "ephemeralcontainers", ns), podNeed("watch", "", ns)}
	},
}

func (k *kube) attachEphemeralSpec() *engine.Spec {
	return &engine.Spec{
		Name: "attach_ephemeral",
		Doc: "attach_ephemeral adds an ephemeral debug container to a running pod (as kubectl debug does), " +
			"sharing the target container's process namespace, and waits until it runs. " +
			"Ephemeral containers cannot be removed: only the pod's deletion clears them; reuse=True " +
			"returns a running kdiag container of the same target and image instead of adding another. " +
			"Use exec(pod, cmd, container=r.container) afterwards.",
		Params: []engine.Param{
			{Name: "pod", Type: "string", Required: true, Doc: "pod name"},
			{Name: "target", Type: "string", Doc: "container whose process namespace to share (None: none)"},
			{Name: "image", Type: "string", Doc: "debug image (default: $KDIAG_DEBUG_IMAGE, else " + DefaultDebugImage + ")"},
			{Name: "command", Type: "list", Default: []any{"sleep", "3600"}, Doc: "command of the debug container"},
			{Name: "profile", Type: "string", Default: "general", Doc: "kubectl debug profile: " + strings.Join(profiles, ", ")},
			{Name: "timeout", Type: "duration", Default: "2m", Doc: "how long to wait for the container to run"},
			{Name: "reuse", Type: "bool", Default: false, Doc: "return a running kdiag-* container of the same target and image if there is one"},
			{Name: "name", Type: "string", Doc: "container name (default: kdiag-<5 random characters>)"},
			{Name: "image_pull_policy", Type: "string", Doc: "Always, IfNotPresent or Never (default: Kubernetes' default for the image)"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
		},
		Result: "pod, namespace: the pod\ncontainer: the ephemeral container's name\ntarget: the shared container\n" +
			"image: the debug image\nstate: running, terminated, or planned (dry run)\nreason, exit_code: when terminated\n" +
			"waiting_reasons: [{reason, message}] the Waiting states seen while starting\nreused: an existing container was returned\n" +
			"dry_run: client or server under --dry-run\nspec: the planned container (dry run)\nnote: the pod keeps the container",
		Effect:  engine.Write,
		Plans:   true,
		Timeout: 2 * time.Minute,
		Run:     k.runAttachEphemeral,
		Undo: func(ctx context.Context, m *engine.Mutation) error {
			return engine.Errorf(engine.KindIrreversible, "attach_ephemeral undo: %s cannot be removed: ephemeral containers stay until the pod is deleted", m.Target)
		},
	}
}

// debugContainer builds the ephemeral container attach_ephemeral adds.
func debugContainer(name, image, pullPolicy, target, profile string, command []string) (*corev1.EphemeralContainer, error) {
	sc, err := profileSecurityContext(profile)
	if err != nil {
		return nil, err
	}
	return &corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: name, Image: image, ImagePullPolicy: corev1.PullPolicy(pullPolicy), Command: command,
			TerminationMessagePolicy: corev1.TerminationMessageReadFile, SecurityContext: sc,
		},
		TargetContainerName: target,
	}, nil
}

func (k *kube) runAttachEphemeral(ctx context.Context, c *engine.Call) (any, error) {
	const op = "attach_ephemeral"
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns, podName := k.namespace(c), c.Args.String("pod")
	pod, err := getPod(ctx, op, cs, ns, podName)
	if err != nil {
		return nil, err
	}
	podRef := objName("pod", ns, podName)
	if podFinished(pod) {
		return nil, engine.Errorf(engine.KindGone, "%s: %s has finished (%s); ephemeral containers cannot start in it", op, podRef, pod.Status.Phase)
	}
	target := c.Args.String("target")
	if target != "" && !hasContainer(pod.Spec.Containers, target) {
		var names []string
		for _, ct := range pod.Spec.Containers {
			names = append(names, ct.Name)
		}
		return nil, engine.Errorf(engine.KindNotFound, "%s: %s has no container %q (containers: %s)", op, podRef, target, strings.Join(names, ", "))
	}
	image := c.Args.String("image")
	if image == "" {
		image = debugImage(k.clients)
	}
	res := &EphemeralResult{Pod: podName, Namespace: ns, Target: target, Image: image, WaitingReasons: []WaitingReason{}, DryRun: string(c.DryRun)}
	if c.Args.Bool("reuse") {
		if name := reusable(pod, target, image); name != "" {
			res.Container, res.State, res.Reused = name, "running", true
			res.Note = fmt.Sprintf("reused ephemeral container %s of pod %s/%s", name, ns, podName)
			return res, nil
		}
	}
	name := c.Args.String("name")
	if name == "" {
		name = k.debugName(c, ns, podName)
	}
	if containerStatus(pod, name) != nil || contains(containerNames(pod, true), name) {
		return nil, engine.Errorf(engine.KindConflict, "%s: %s already has a container named %q", op, podRef, name)
	}
	switch p := c.Args.String("image_pull_policy"); p {
	case "", "Always", "IfNotPresent", "Never":
	default:
		return nil, engine.Errorf(engine.KindInvalid, "%s: image_pull_policy %q: want Always, IfNotPresent or Never", op, p)
	}
	ec, err := debugContainer(name, image, c.Args.String("image_pull_policy"), target, c.Args.String("profile"), c.Args.Strings("command"))
	if err != nil {
		return nil, engine.Errorf(engine.KindInvalid, "%s: %v", op, err)
	}
	res.Container = name
	res.Note = fmt.Sprintf("pod %s/%s now carries ephemeral container %s; ephemeral containers cannot be removed, only the pod's deletion clears them", ns, podName, name)
	mut := engine.Mutation{
		Target: fmt.Sprintf("pod %s/%s ephemeral container %s", ns, podName, name),
		Before: mustJSON(ephemeralNames(pod)),
		Patch:  mustJSON(ec),
	}
	if c.DryRun == engine.DryRunClient {
		res.State, res.Spec = "planned", ec
		res.Note = fmt.Sprintf("dry run: pod %s/%s would carry ephemeral container %s, which could not be removed", ns, podName, name)
		c.RecordMutation(mut)
		return res, nil
	}
	updated, err := addEphemeral(ctx, cs, pod, ec, c.DryRun == engine.DryRunServer)
	if err != nil {
		return nil, err
	}
	if c.DryRun == engine.DryRunServer {
		res.State = "planned"
		for i := range updated.Spec.EphemeralContainers {
			if updated.Spec.EphemeralContainers[i].Name == name {
				res.Spec = &updated.Spec.EphemeralContainers[i]
			}
		}
		res.Note = fmt.Sprintf("dry run (server): pod %s/%s would carry ephemeral container %s, which could not be removed", ns, podName, name)
		mut.After = mustJSON(ephemeralNames(updated))
		c.RecordMutation(mut)
		return res, nil
	}
	mut.After, mut.Applied = mustJSON(ephemeralNames(updated)), true
	c.RecordMutation(mut)
	return res, waitEphemeral(ctx, cs, updated, res, c.Args.Duration("timeout"))
}

// debugName returns a new kdiag-<random> name; the name a client-side
// plan of the same call (same position, same pod) chose is reused once.
func (k *kube) debugName(c *engine.Call, ns, pod string) string {
	key := c.Pos + "|" + ns + "/" + pod
	k.mu.Lock()
	defer k.mu.Unlock()
	if name, ok := k.planned[key]; ok {
		delete(k.planned, key)
		return name
	}
	name := debugPrefix + nameSuffix()
	if c.DryRun == engine.DryRunClient && c.Pos != "" {
		if k.planned == nil {
			k.planned = map[string]string{}
		}
		k.planned[key] = name
	}
	return name
}

// addEphemeral adds ec to the pod through the ephemeralcontainers
// subresource, retrying when the pod changed in between.
func addEphemeral(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, ec *corev1.EphemeralContainer, dryRun bool) (*corev1.Pod, error) {
	const op = "attach_ephemeral"
	podRef := objName("pod", pod.Namespace, pod.Name)
	opts := metav1.UpdateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for attempt := 0; ; attempt++ {
		next := pod.DeepCopy()
		next.Spec.EphemeralContainers = append(next.Spec.EphemeralContainers, *ec)
		updated, err := cs.CoreV1().Pods(pod.Namespace).UpdateEphemeralContainers(ctx, pod.Name, next, opts)
		if err == nil {
			return updated, nil
		}
		var se *apierrors.StatusError
		switch {
		case apierrors.IsConflict(err) && attempt < 3:
			if pod, err = getPod(ctx, op, cs, pod.Namespace, pod.Name); err != nil {
				return nil, err
			}
			continue
		case apierrors.IsNotFound(err) && errors.As(err, &se) && (se.ErrStatus.Details == nil || se.ErrStatus.Details.Name == ""):
			// A 404 without a name is the subresource missing, not the pod.
			return nil, engine.Errorf(engine.KindNotFound, "%s: ephemeral containers are disabled in this cluster (the pods/ephemeralcontainers subresource is missing: %s)", op, statusMessage(err))
		case apierrors.IsNotFound(err):
			return nil, engine.Errorf(engine.KindGone, "%s: %s was deleted", op, podRef)
		}
		return nil, apiError(op, err, podRef, podNeed("update", "ephemeralcontainers", pod.Namespace))
	}
}

// reusable returns the name of a running kdiag ephemeral container of the
// pod with the same target and image, or "".
func reusable(p *corev1.Pod, target, image string) string {
	for _, ec := range p.Spec.EphemeralContainers {
		if !strings.HasPrefix(ec.Name, debugPrefix) || ec.TargetContainerName != target || ec.Image != image {
			continue
		}
		if st := containerStatus(p, ec.Name); st != nil && st.State.Running != nil {
			return ec.Name
		}
	}
	return ""
}

func hasContainer(list []corev1.Container, name string) bool {
	for _, c := range list {
		if c.Name == name {
			return true
		}
	}
	return false
}

func ephemeralNames(p *corev1.Pod) []string {
	names := []string{}
	for _, ec := range p.Spec.EphemeralContainers {
		names = append(names, ec.Name)
	}
	return names
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on API types and plain values
	}
	return b
}
