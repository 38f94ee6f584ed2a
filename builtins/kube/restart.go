package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// restartedAtAnnotation is kubectl rollout restart's annotation.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// now is the clock of restart's annotation; tests replace it.
var now = time.Now

// RestartResult is what restart returns.
type RestartResult struct {
	Kind        string         `json:"kind"`
	Name        string         `json:"name"`
	Namespace   string         `json:"namespace"`
	Action      string         `json:"action"`
	Owner       string         `json:"owner,omitempty"`
	Workload    string         `json:"workload,omitempty"`
	Selector    string         `json:"selector,omitempty"`
	NewPod      string         `json:"new_pod,omitempty"`
	OldUID      string         `json:"old_uid,omitempty"`
	NewUID      string         `json:"new_uid,omitempty"`
	RestartedAt string         `json:"restarted_at,omitempty"`
	DryRun      string         `json:"dry_run,omitempty"`
	Planned     map[string]any `json:"planned,omitempty"`
	Note        string         `json:"note"`
}

// restartBuiltin is restart and the API permissions it needs.
var restartBuiltin = builtin{
	spec: (*kube).restartSpec,
	// The default kind, pod; restarting a workload needs "patch" on it.
	needs: func(ns string) []Need {
		return []Need{podNeed("get", "", ns), podNeed("list", "", ns), podNeed("delete", "", ns), podNeed("create", "", ns), podNeed("watch", "", ns)}
	},
}

func (k *kube) restartSpec() *engine.Spec {
	return &engine.Spec{
		Name: "restart",
		Doc: "restart restarts a pod or a workload. A pod with a controller is deleted and its controller " +
			"recreates it; a bare pod (no owner) is recreated from its own spec (same name, new uid, node " +
			"chosen again, ephemeral containers dropped) after the old one is gone; a deployment, statefulset " +
			"or daemonset gets kubectl rollout restart's restartedAt annotation. A restart has no inverse: " +
			"kdiag undo reports it and goes on.",
		Params: []engine.Param{
			{Name: "kind", Type: "string", Default: "pod", Doc: "pod, deployment, statefulset or daemonset"},
			{Name: "name", Type: "string", Required: true, Doc: "object name"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
			{Name: "grace_period", Type: "int", Doc: "seconds the old pod gets to stop (default: its own terminationGracePeriodSeconds)"},
			{Name: "timeout", Type: "duration", Default: "2m", Doc: "how long to wait for a bare pod to be gone"},
		},
		Result: "kind, name, namespace: what was restarted\naction: deleted (controller recreates), recreated (bare pod) or rollout\n" +
			"owner: the pod's controller (ReplicaSet/x); workload: what a person names (Deployment/x); selector: the controller's label selector\n" +
			"new_pod: the pod that replaces it (its controller's new pod, or the recreated bare pod); empty if none appeared within 30s\n" +
			"old_uid, new_uid: the pod's uid before and after\nrestarted_at: the rollout annotation's value\n" +
			"dry_run: client or server under --dry-run\nplanned: the pod that would be created (bare pod, dry run)\nnote: what happens next",
		Effect:  engine.Write,
		Plans:   true,
		Timeout: 2 * time.Minute,
		Run:     k.runRestart,
		Undo: func(ctx context.Context, m *engine.Mutation) error {
			return engine.Errorf(engine.KindIrreversible, "restart undo: %s was restarted; a restart has no inverse (the old object is in the transcript's before-state)", m.Target)
		},
	}
}

func (k *kube) runRestart(ctx context.Context, c *engine.Call) (any, error) {
	ki, ok := lookupKind(c.Args.String("kind"))
	switch {
	case !ok:
		return nil, engine.Errorf(engine.KindInvalid, "restart: unknown kind %q (want pod, deployment, statefulset or daemonset)", c.Args.String("kind"))
	case ki.name == "pod":
		return k.restartPod(ctx, c)
	case ki.name == "deployment" || ki.name == "statefulset" || ki.name == "daemonset":
		return k.rolloutRestart(ctx, c, ki)
	}
	return nil, engine.Errorf(engine.KindInvalid, "restart: cannot restart a %s (want pod, deployment, statefulset or daemonset)", ki.name)
}

// rolloutRestart sets the pod template's restartedAt annotation.
func (k *kube) rolloutRestart(ctx context.Context, c *engine.Call, ki kindInfo) (any, error) {
	const op = "restart"
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns, name := k.namespace(c), c.Args.String("name")
	ref := objName(ki.name, ns, name)
	before, err := k.getObject(ctx, op, ki, ns, name, false)
	if err != nil {
		return nil, err
	}
	at := now().UTC().Format(time.RFC3339)
	patch := mustJSON(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{restartedAtAnnotation: at}}}}})
	res := &RestartResult{Kind: ki.name, Name: name, Namespace: ns, Action: "rollout", RestartedAt: at, DryRun: string(c.DryRun),
		Note: fmt.Sprintf("the %s controller replaces its pods following its update strategy", ki.name)}
	mut := engine.Mutation{Target: fmt.Sprintf("%s %s/%s", ki.name, ns, name), Before: mustJSON(before), Patch: patch}
	if c.DryRun != engine.DryRunClient {
		opts := metav1.PatchOptions{}
		if c.DryRun == engine.DryRunServer {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		need := Need{Verb: "patch", Group: ki.group, Resource: ki.resource, Namespace: ns}
		var perr error
		switch ki.name {
		case "deployment":
			_, perr = cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
		case "statefulset":
			_, perr = cs.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
		case "daemonset":
			_, perr = cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
		}
		if perr != nil {
			return nil, apiError(op, perr, ref, need)
		}
	}
	mut.Applied = c.DryRun == engine.DryRunNone
	c.RecordMutation(mut)
	return res, nil
}

// restartPod deletes a controlled pod, or recreates a bare one.
func (k *kube) restartPod(ctx context.Context, c *engine.Call) (any, error) {
	const op = "restart"
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns, name := k.namespace(c), c.Args.String("name")
	ref := objName("pod", ns, name)
	pod, err := getPod(ctx, op, cs, ns, name)
	if err != nil {
		return nil, err
	}
	res := &RestartResult{Kind: "pod", Name: name, Namespace: ns, OldUID: string(pod.UID), DryRun: string(c.DryRun)}
	podJSON, _ := decodeObject(mustJSON(pod))
	ki, _ := lookupKind("pod")
	cleanObject(podJSON, ki)
	mut := engine.Mutation{Target: fmt.Sprintf("pod %s/%s", ns, name), Before: mustJSON(podJSON)}
	del := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	if c.Args.Has("grace_period") {
		g := c.Args.Int("grace_period")
		del.GracePeriodSeconds = &g
	}
	if c.DryRun == engine.DryRunServer {
		del.DryRun = []string{metav1.DryRunAll}
	}
	deleteNeed := podNeed("delete", "", ns)

	if owner := metav1.GetControllerOf(pod); owner != nil {
		res.Action, res.Owner = "deleted", owner.Kind+"/"+owner.Name
		res.Workload, res.Selector = workloadOf(ctx, cs, ns, owner)
		res.Note = fmt.Sprintf("%s creates a replacement pod", res.Workload)
		var existing map[types.UID]bool
		if c.DryRun == engine.DryRunNone {
			if existing, err = existingPods(ctx, cs, ns, res.Selector); err != nil {
				return nil, apiError(op, err, "pods of "+res.Workload, podNeed("list", "", ns))
			}
		}
		if c.DryRun != engine.DryRunClient {
			if err := cs.CoreV1().Pods(ns).Delete(ctx, name, del); err != nil {
				return nil, apiError(op, err, ref, deleteNeed)
			}
		}
		mut.Applied = c.DryRun == engine.DryRunNone
		c.RecordMutation(mut)
		if !mut.Applied {
			return res, nil
		}
		repl, err := awaitReplacement(ctx, cs, pod, owner.UID, res.Selector, existing)
		if err != nil {
			return nil, err
		}
		if repl != nil {
			res.NewPod, res.NewUID = repl.Name, string(repl.UID)
		}
		res.Note = replacementNote(res.Workload, repl)
		return res, nil
	}

	res.Action = "recreated"
	fresh := recreatedPod(pod)
	mut.Patch = mustJSON(fresh)
	// Let the API server validate the new pod (admission included) before
	// the old one is deleted: a bare pod has nobody else to recreate it.
	probe := fresh.DeepCopy()
	probe.Name, probe.GenerateName = "", name+"-"
	if c.DryRun != engine.DryRunClient {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return nil, apiError(op, err, ref+" (its recreation, checked before deleting it)", podNeed("create", "", ns))
		}
	}
	if c.DryRun != engine.DryRunNone {
		res.Planned, _ = decodeObject(mustJSON(fresh))
		res.Note = fmt.Sprintf("dry run: %s would be deleted and created again from its spec", ref)
		c.RecordMutation(mut)
		return res, nil
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, name, del); err != nil {
		return nil, apiError(op, err, ref, deleteNeed)
	}
	mut.Applied = true
	c.RecordMutation(mut) // the old pod is gone from here on, whatever happens next
	if err := waitGone(ctx, cs, pod, c.Args.Duration("timeout")); err != nil {
		return nil, err
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, fresh, metav1.CreateOptions{})
	if err != nil {
		e := apiError(op, err, ref, podNeed("create", "", ns))
		return nil, engine.Errorf(engine.KindOf(e), "%s; the old pod is deleted and its spec is in the transcript's before-state", e.Error())
	}
	res.NewUID, res.NewPod = string(created.UID), created.Name
	res.Note = fmt.Sprintf("%s was recreated from its own spec (it has no controller)", ref)
	after, _ := decodeObject(mustJSON(created))
	cleanObject(after, ki)
	mut.After = mustJSON(after)
	c.RecordMutation(mut)
	return res, nil
}

// recreatedPod returns the pod to create in place of a bare pod: its name,
// labels, annotations and spec, without server-set metadata, status, node
// (the scheduler places it again), ephemeral containers (they cannot be
// set on create) and the service-account token volume the admission
// plugin adds again.
func recreatedPod(old *corev1.Pod) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: old.Name, Namespace: old.Namespace,
			Labels: old.Labels, Annotations: old.Annotations,
		},
		Spec: *old.Spec.DeepCopy(),
	}
	p.Spec.NodeName = ""
	p.Spec.EphemeralContainers = nil
	tokenVolumes := map[string]bool{}
	var vols []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil {
			tokenVolumes[v.Name] = true
			continue
		}
		vols = append(vols, v)
	}
	p.Spec.Volumes = vols
	strip := func(cs []corev1.Container) {
		for i := range cs {
			var mounts []corev1.VolumeMount
			for _, m := range cs[i].VolumeMounts {
				if !tokenVolumes[m.Name] {
					mounts = append(mounts, m)
				}
			}
			cs[i].VolumeMounts = mounts
		}
	}
	strip(p.Spec.Containers)
	strip(p.Spec.InitContainers)
	return p
}
