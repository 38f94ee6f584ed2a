package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// maxExecOutput caps each of exec's stdout and stderr.
const maxExecOutput = 1 << 20

// ExecResult is what exec returns.
type ExecResult struct {
	Pod             string `json:"pod"`
	Container       string `json:"container"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	ExitCode        int    `json:"exit_code"`
	OK              bool   `json:"ok"`
}

// execBuiltin is exec and the API permissions it needs.
var execBuiltin = builtin{
	spec:  (*kube).execSpec,
	needs: func(ns string) []Need { return []Need{podNeed("get", "", ns), podNeed("create", "exec", ns)} },
}

func (k *kube) execSpec() *engine.Spec {
	return &engine.Spec{
		Name: "exec",
		Doc: "exec runs a command in a container, as kubectl exec does (WebSocket, falling back to SPDY), " +
			"and returns its output and exit code; a non-zero exit is a result, not an error. " +
			"Ephemeral containers (attach_ephemeral) work too.",
		Params: []engine.Param{
			{Name: "pod", Type: "string", Required: true, Doc: "pod name"},
			{Name: "command", Type: "list", Required: true, Doc: "command and arguments, e.g. [\"ps\", \"aux\"]"},
			{Name: "container", Type: "string", Doc: "container (default: kubectl's default-container annotation, else the first)"},
			{Name: "stdin", Type: "string", Doc: "text fed to the command's standard input"},
			{Name: "timeout", Type: "duration", Default: "30s", Doc: "how long the command may run"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
		},
		Result: "pod, container: where the command ran\nstdout, stderr: its output, each at most 1 MiB\n" +
			"stdout_truncated, stderr_truncated: output was cut\nexit_code: the exit status\nok: exit_code == 0",
		Effect:  engine.Read,
		Timeout: 30 * time.Second,
		Run:     k.runExec,
	}
}

func (k *kube) runExec(ctx context.Context, c *engine.Call) (any, error) {
	const op = "exec"
	cs, rc, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns, name := k.namespace(c), c.Args.String("pod")
	command := c.Args.Strings("command")
	if len(command) == 0 {
		return nil, engine.Errorf(engine.KindInvalid, "%s: empty command", op)
	}
	pod, err := getPod(ctx, op, cs, ns, name)
	if err != nil {
		return nil, err
	}
	container, err := resolveContainer(op, pod, c.Args.String("container"), true)
	if err != nil {
		return nil, err
	}
	if err := runnable(op, pod, container); err != nil {
		return nil, err
	}
	var stdin *strings.Reader
	if c.Args.Has("stdin") {
		stdin = strings.NewReader(c.Args.String("stdin"))
	}
	stdout, stderr := &cappedBuffer{max: maxExecOutput}, &cappedBuffer{max: maxExecOutput}
	err = streamExec(ctx, cs, rc, ns, name, container, command, stdin, stdout, stderr)
	res := ExecResult{
		Pod: name, Container: container, Stdout: stdout.String(), Stderr: stderr.String(),
		StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated,
	}
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitStatus()
		if res.ExitCode == 137 || res.ExitCode == 143 {
			// Killed: by the command's own doing, or because the pod went away?
			if gerr := k.stillThere(ctx, cs, pod, container); gerr != nil {
				return nil, gerr
			}
		}
	default:
		return nil, k.execError(ctx, cs, pod, container, command, c.Args.Duration("timeout"), err)
	}
	res.OK = res.ExitCode == 0
	return res, nil
}

// streamExec runs command through the pods/exec subresource.
func streamExec(ctx context.Context, cs kubernetes.Interface, rc *rest.Config, ns, pod, container string, command []string,
	stdin *strings.Reader, stdout, stderr *cappedBuffer) error {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container, Command: command, Stdin: stdin != nil, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(rc, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("websocket executor: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(rc, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("spdy executor: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr}
	if stdin != nil {
		opts.Stdin = stdin
	}
	return exec.StreamWithContext(ctx, opts)
}

// runnable fails when the container has no running process to exec into.
func runnable(op string, p *corev1.Pod, container string) error {
	ref := objName("pod", p.Namespace, p.Name)
	if podFinished(p) {
		return engine.Errorf(engine.KindGone, "%s: %s has finished (%s)", op, ref, p.Status.Phase)
	}
	st := containerStatus(p, container)
	if st == nil || st.State.Running != nil {
		return nil // no status yet: let the kubelet answer
	}
	state := "waiting"
	detail := ""
	if w := st.State.Waiting; w != nil {
		detail = w.Reason
	}
	if t := st.State.Terminated; t != nil {
		state, detail = "terminated", fmt.Sprintf("%s, exit code %d", t.Reason, t.ExitCode)
	}
	return engine.Errorf(engine.KindGone, "%s: container %q of %s is not running (%s: %s)", op, container, ref, state, detail)
}

// execError explains a failed exec: deadline, the pod or container gone
// in the meantime, a missing executable, or an API error.
func (k *kube) execError(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, container string, command []string,
	timeout time.Duration, err error) error {
	const op = "exec"
	ref := objName("pod", pod.Namespace, pod.Name)
	if ctx.Err() != nil {
		return ctxError(ctx, op, "%q in container %q of %s did not finish within %s", strings.Join(command, " "), container, ref, timeout)
	}
	var up *httpstream.UpgradeFailureError
	if errors.As(err, &up) && up.Cause != nil {
		err = up.Cause
	}
	msg := err.Error()
	what := fmt.Sprintf("container %q of %s", container, ref)
	if rest, ok := strings.CutPrefix(msg, "unable to upgrade connection: "); ok {
		// SPDY reports the API server's refusal as text only.
		switch {
		case strings.Contains(rest, "is forbidden"):
			return engine.Errorf(engine.KindForbidden, "%s: forbidden: %s; add to a Role: %s", op, lowerFirst(rest), podNeed("create", "exec", pod.Namespace).roleRule())
		case strings.Contains(rest, "not found"):
			if gerr := k.stillThere(ctx, cs, pod, container); gerr != nil {
				return gerr
			}
			return engine.Errorf(engine.KindNotFound, "%s: %s: %s", op, what, lowerFirst(rest))
		}
	}
	if strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") {
		return engine.Errorf(engine.KindNotFound, "%s: cannot run %q in container %q of %s: %s", op, command[0], container, ref, lowerFirst(msg))
	}
	if gerr := k.stillThere(ctx, cs, pod, container); gerr != nil {
		return gerr
	}
	return apiError(op, err, what, podNeed("create", "exec", pod.Namespace))
}

// stillThere returns a KindGone error when the pod was deleted or replaced,
// or the container stopped, since the command started.
func (k *kube) stillThere(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, container string) error {
	const op = "exec"
	ref := objName("pod", pod.Namespace, pod.Name)
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now, err := getPod(gctx, op, cs, pod.Namespace, pod.Name)
	switch {
	case engine.KindOf(err) == engine.KindNotFound:
		return engine.Errorf(engine.KindGone, "%s: %s was deleted during the command", op, ref)
	case err == nil && now.UID != pod.UID:
		return engine.Errorf(engine.KindGone, "%s: %s was replaced during the command", op, ref)
	case err == nil && now.DeletionTimestamp != nil:
		return engine.Errorf(engine.KindGone, "%s: %s is being deleted", op, ref)
	case err == nil:
		return runnable(op, now, container)
	}
	return nil
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
type cappedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		if len(p) > room {
			b.buf = append(b.buf, p[:room]...)
			b.truncated = true
		} else {
			b.buf = append(b.buf, p...)
		}
	} else if len(p) > 0 {
		b.truncated = true
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string { return string(b.buf) }
