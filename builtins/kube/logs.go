package kube

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// maxLogBytes caps the log text logs returns (the API server cuts there).
const maxLogBytes = 1 << 20

// LogsResult is what logs returns.
type LogsResult struct {
	Pod       string `json:"pod"`
	Container string `json:"container"`
	Text      string `json:"text"`
	Lines     int    `json:"lines"`
	Truncated bool   `json:"truncated"`
	Note      string `json:"note,omitempty"`
}

// logsBuiltin is logs and the API permissions it needs.
var logsBuiltin = builtin{
	spec:  (*kube).logsSpec,
	needs: func(ns string) []Need { return []Need{podNeed("get", "", ns), podNeed("get", "log", ns)} },
}

func (k *kube) logsSpec() *engine.Spec {
	return &engine.Spec{
		Name: "logs",
		Doc: "logs returns a container's log, at most 1 MiB (the tail of it when tail= is given). " +
			"previous=True reads the last terminated instance, as kubectl logs --previous.",
		Params: []engine.Param{
			{Name: "pod", Type: "string", Required: true, Doc: "pod name"},
			{Name: "container", Type: "string", Doc: "container (default: kubectl's default-container annotation, else the first)"},
			{Name: "tail", Type: "int", Doc: "only the last N lines"},
			{Name: "since", Type: "duration", Doc: "only lines newer than this, e.g. \"10m\""},
			{Name: "previous", Type: "bool", Default: false, Doc: "the previous (terminated) instance of the container"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
		},
		Result: "pod: the pod name\ncontainer: the container read\ntext: the log text\n" +
			"lines: number of lines in text\ntruncated: true when the log was cut at 1 MiB\n" +
			"note: set when previous=True found the previous log gone and read the terminated current instance instead",
		Effect:  engine.Read,
		Timeout: logsTimeout,
		Run:     k.runLogs,
	}
}

func (k *kube) runLogs(ctx context.Context, c *engine.Call) (any, error) {
	cs, _, err := k.client("logs")
	if err != nil {
		return nil, err
	}
	ns, name := k.namespace(c), c.Args.String("pod")
	pod, err := getPod(ctx, "logs", cs, ns, name)
	if err != nil {
		return nil, err
	}
	container, err := resolveContainer("logs", pod, c.Args.String("container"), true)
	if err != nil {
		return nil, err
	}
	limit := int64(maxLogBytes)
	opts := &corev1.PodLogOptions{Container: container, Previous: c.Args.Bool("previous"), LimitBytes: &limit}
	if c.Args.Has("tail") {
		t := c.Args.Int("tail")
		opts.TailLines = &t
	}
	if d := c.Args.Duration("since"); d > 0 {
		s := int64(d.Seconds())
		if s < 1 {
			s = 1
		}
		opts.SinceSeconds = &s
	}
	what := fmt.Sprintf("%s container %q", objName("pod", ns, name), container)
	data, err := readLog(ctx, cs, ns, name, opts, limit, what)
	if err != nil {
		return nil, err
	}
	note := ""
	if kubeletLogError.Match(data) {
		// The kubelet answers 200 with this text when the instance's log is
		// gone: it keeps only the newest dead instance of a container, so
		// while a crash-looping container's current instance is terminated,
		// the "previous" one has no log left. Read the current one instead,
		// and say so.
		pod, err = getPod(ctx, "logs", cs, ns, name)
		if err != nil {
			return nil, err
		}
		st := containerStatus(pod, container)
		if !opts.Previous && st != nil && st.State.Running != nil {
			// The instance runs, so its log is there: the kubelet could not
			// ask the container runtime where (ContainerStatus failed).
			return nil, engine.Errorf(engine.KindUnavailable, "logs: the kubelet on node %s answers, but could not get the log of running %s from the container runtime (it says %q): the runtime is not answering, or restarting; on the node check systemctl status containerd, crictl info (node built-ins such as find_pid(container_id=...) still work without it)",
				pod.Spec.NodeName, what, strings.TrimSpace(string(data)))
		}
		if !opts.Previous || st == nil || st.State.Terminated == nil {
			return nil, engine.Errorf(engine.KindNotFound, "logs: %s has no readable log: the kubelet says %q", what, strings.TrimSpace(string(data)))
		}
		t := st.State.Terminated
		opts.Previous = false
		if data, err = readLog(ctx, cs, ns, name, opts, limit, what); err != nil {
			return nil, err
		}
		if kubeletLogError.Match(data) {
			return nil, engine.Errorf(engine.KindNotFound, "logs: %s has no readable log: the kubelet says %q", what, strings.TrimSpace(string(data)))
		}
		note = fmt.Sprintf("the previous instance's log is gone (the kubelet keeps only the newest dead instance); "+
			"this is the log of the current instance, which terminated (%s, exit code %d)", t.Reason, t.ExitCode)
	}
	res := LogsResult{Pod: name, Container: container, Truncated: int64(len(data)) >= limit, Note: note}
	if int64(len(data)) > limit {
		data = data[:limit]
	}
	res.Text = string(data)
	res.Lines = countLines(res.Text)
	return res, nil
}

var kubeletLogError = regexp.MustCompile(`^unable to retrieve container logs for [a-z]+://[0-9a-f]+\s*$`)

// readLog reads one container log, at most limit+1 bytes.
func readLog(ctx context.Context, cs kubernetes.Interface, ns, name string, opts *corev1.PodLogOptions, limit int64, what string) ([]byte, error) {
	stream, err := cs.CoreV1().Pods(ns).GetLogs(name, opts).Stream(ctx)
	if err != nil {
		if apierrors.IsBadRequest(err) {
			// "previous terminated container ... not found", "container ... is
			// waiting to start": there is no such log.
			return nil, engine.Errorf(engine.KindNotFound, "logs: %s has no log: %s", what, statusMessage(err))
		}
		return nil, apiError("logs", err, what, podNeed("get", "log", ns))
	}
	defer stream.Close()
	data, err := io.ReadAll(io.LimitReader(stream, limit+1))
	if err != nil {
		return nil, apiError("logs", fmt.Errorf("reading: %w", err), what, Need{})
	}
	return data, nil
}

func countLines(s string) int {
	if s == "" {
		return 0
	}
	n := strings.Count(s, "\n")
	if !strings.HasSuffix(s, "\n") {
		n++
	}
	return n
}
