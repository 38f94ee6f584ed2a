package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// WaitResult is what wait_ready returns.
type WaitResult struct {
	Ready bool `json:"ready"`
	// Failed is set when a pod got into a state it does not recover
	// from by waiting (crash loop, image pull back-off, bad config):
	// wait_ready stops early and Reason says which.
	Failed   bool        `json:"failed"`
	Pods     []PodStatus `json:"pods"`
	WaitedMS int64       `json:"waited_ms"`
	Reason   string      `json:"reason,omitempty"`
}

// PodStatus is one pod's readiness in a WaitResult.
type PodStatus struct {
	Name   string `json:"name"`
	Ready  string `json:"ready"`
	Phase  string `json:"phase"`
	Reason string `json:"reason,omitempty"`
}

// waitReadyBuiltin is wait_ready and the API permissions it needs.
var waitReadyBuiltin = builtin{
	spec:  (*kube).waitReadySpec,
	needs: func(ns string) []Need { return []Need{podNeed("list", "", ns), podNeed("watch", "", ns)} },
}

func (k *kube) waitReadySpec() *engine.Spec {
	return &engine.Spec{
		Name: "wait_ready",
		Doc: "wait_ready waits until a pod, or every pod matching a label selector (at least one), is Ready. " +
			"Running out of time is a result (ready=False with a reason), not an error, so a runbook can branch on it. " +
			"With fail_fast (the default) it stops as soon as a pod gets worse in a way waiting does not mend " +
			"(CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError, a failed pod): failed=True.",
		Params: []engine.Param{
			{Name: "pod", Type: "string", Doc: "pod name"},
			{Name: "selector", Type: "string", Doc: "label selector, e.g. app=web (instead of pod)"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
			{Name: "timeout", Type: "duration", Default: "2m", Doc: "how long to wait"},
			{Name: "fail_fast", Type: "bool", Default: true, Doc: "stop early when a pod crash-loops, cannot pull its image or cannot start"},
		},
		Result: "ready: all matched pods are Ready\nfailed: a pod got worse (fail_fast); reason says how\npods: [{name, ready (\"2/2\"), phase, reason}]\n" +
			"waited_ms: time waited\nreason: why not ready, when ready is false",
		Effect:  engine.Read,
		Timeout: 2 * time.Minute,
		Run:     k.runWaitReady,
	}
}

func (k *kube) runWaitReady(ctx context.Context, c *engine.Call) (any, error) {
	const op = "wait_ready"
	podName, selector := c.Args.String("pod"), c.Args.String("selector")
	if (podName == "") == (selector == "") {
		return nil, engine.Errorf(engine.KindInvalid, "%s: give either pod or selector", op)
	}
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns := k.namespace(c)
	timeout := c.Args.Duration("timeout")
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	opts := metav1.ListOptions{}
	what := fmt.Sprintf("pods matching %q", selector)
	if podName != "" {
		if _, err := getPod(ctx, op, cs, ns, podName); err != nil {
			return nil, err
		}
		opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", podName).String()
		what = objName("pod", ns, podName)
	} else {
		if _, err := labels.Parse(selector); err != nil {
			return nil, engine.Errorf(engine.KindInvalid, "%s: selector %q: %v", op, selector, err)
		}
		opts.LabelSelector = selector
	}
	pods := map[string]*corev1.Pod{}
	listed := false
	failFast := !c.Args.Has("fail_fast") || c.Args.Bool("fail_fast")
	worse := ""
	err = watchPods(ctx, op, cs, ns, opts, func(t watch.EventType, p *corev1.Pod) (bool, error) {
		switch {
		case p == nil:
			listed = true
		case t == watch.Deleted:
			delete(pods, p.Name)
		default:
			pods[p.Name] = p
		}
		if failFast && listed {
			if worse = worseState(pods); worse != "" {
				return true, nil
			}
		}
		return listed && allReady(pods), nil
	})
	res := &WaitResult{Pods: podStatuses(pods), WaitedMS: time.Since(start).Milliseconds()}
	switch {
	case err == nil && worse != "":
		res.Failed, res.Reason = true, worse
		return res, nil
	case err == nil:
		res.Ready = true
		return res, nil
	case ctx.Err() == context.DeadlineExceeded:
		res.Reason = notReadyReason(pods, what, timeout)
		return res, nil
	case ctx.Err() != nil:
		return nil, ctxError(ctx, op, "waiting for %s", what)
	}
	return nil, err
}

func allReady(pods map[string]*corev1.Pod) bool {
	if len(pods) == 0 {
		return false
	}
	for _, p := range pods {
		if !podReady(p) {
			return false
		}
	}
	return true
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podStatuses(pods map[string]*corev1.Pod) []PodStatus {
	out := []PodStatus{}
	for _, p := range pods {
		ready := 0
		for _, s := range p.Status.ContainerStatuses {
			if s.Ready {
				ready++
			}
		}
		ps := PodStatus{Name: p.Name, Phase: string(p.Status.Phase), Ready: fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))}
		if !podReady(p) {
			ps.Reason = notReadyDetail(p)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// notReadyDetail says why one pod is not ready.
func notReadyDetail(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil && w.Reason != "" {
			return fmt.Sprintf("container %q waiting: %s", s.Name, w.Reason)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && (c.Type == corev1.PodReady || c.Type == corev1.PodScheduled) {
			return strings.TrimSuffix(fmt.Sprintf("%s: %s: %s", c.Type, c.Reason, c.Message), ": ")
		}
	}
	return "phase " + string(p.Status.Phase)
}

func notReadyReason(pods map[string]*corev1.Pod, what string, timeout time.Duration) string {
	if len(pods) == 0 {
		return fmt.Sprintf("timed out after %s: no %s", timeout, what)
	}
	var parts []string
	for _, ps := range podStatuses(pods) {
		if ps.Reason != "" {
			parts = append(parts, fmt.Sprintf("pod %s not ready (%s)", ps.Name, ps.Reason))
		}
	}
	return fmt.Sprintf("timed out after %s: %s", timeout, strings.Join(parts, "; "))
}

// worseStates are the Waiting reasons that waiting does not mend.
var worseStates = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// worseState names the first pod (by name) in a state waiting does not
// mend, or returns "".
func worseState(pods map[string]*corev1.Pod) string {
	for _, n := range slices.Sorted(maps.Keys(pods)) {
		p := pods[n]
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase == corev1.PodFailed {
			return fmt.Sprintf("pod %s failed: %s %s", n, p.Status.Reason, p.Status.Message)
		}
		for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := st.State.Waiting; w != nil && worseStates[w.Reason] {
				return fmt.Sprintf("pod %s container %s: %s: %s", n, st.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}
