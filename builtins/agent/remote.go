package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// errAgentGone marks a call that failed because its agent pod went away
// (deleted, evicted, its deadline passed): the call may be retried with a
// new agent.
var errAgentGone = errors.New("the agent pod is gone")

// conn sends requests to one agent pod: one pods/exec of
// `kdiag agent call` per request, the Request on its standard input, the
// Response on its standard output.
type conn struct {
	cs     kubernetes.Interface
	rc     *rest.Config
	ns     string
	name   string
	binary string
}

// call sends req for op and decodes the result into res.
func (c *conn) call(ctx context.Context, op string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: node agent: encode the request: %v", op, err)
	}
	env := Request{V: ProtocolVersion, Op: op, Request: body}
	if d, ok := ctx.Deadline(); ok {
		env.TimeoutMS = max(time.Until(d).Milliseconds(), 1)
	}
	line, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("%s: node agent: encode the request: %v", op, err)
	}
	in := &heldReader{data: append(line, '\n'), done: make(chan struct{})}
	defer in.close()
	var stdout, stderr bytes.Buffer
	if err := c.exec(ctx, in, &stdout, &stderr); err != nil {
		return c.execError(ctx, op, err, stderr.String())
	}
	return decodeResponse(op, fmt.Sprintf("node agent %s/%s", c.ns, c.name), stdout.Bytes(), stderr.String(), res)
}

// decodeResponse decodes the agent's answer to op into res: its error with
// its kind, or a version mismatch.
func decodeResponse(op, where string, stdout []byte, stderr string, res any) error {
	var resp Response
	if err := json.Unmarshal(stdout, &resp); err != nil {
		return fmt.Errorf("%s: %s answered no response (%v): %q, stderr %q", op, where, err, clip(string(stdout)), clip(stderr))
	}
	if resp.V != ProtocolVersion {
		return fmt.Errorf("%s: %s: %w", op, where, &VersionError{Agent: resp.V, Kdiag: ProtocolVersion})
	}
	if resp.Error != nil {
		return resp.Error.err()
	}
	if err := json.Unmarshal(resp.Result, res); err != nil {
		return fmt.Errorf("%s: %s: cannot decode the result: %v", op, where, err)
	}
	return nil
}

// exec runs `kdiag agent call` in the agent container, over WebSocket and
// falling back to SPDY, as kubectl exec does.
func (c *conn) exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	req := c.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(c.ns).Name(c.name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: containerName, Command: []string{c.binary, "agent", "call"}, Stdin: true, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(c.rc, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("websocket executor: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(c.rc, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("spdy executor: %w", err)
	}
	x, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return x.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// execError explains a failed exec: the call's deadline, an agent pod that
// went away (errAgentGone), a refusal, or `kdiag agent call` failing.
func (c *conn) execError(ctx context.Context, op string, err error, stderr string) error {
	where := fmt.Sprintf("node agent %s/%s", c.ns, c.name)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", op, where, ctx.Err())
	}
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return fmt.Errorf("%s: %s: %s agent call exited with code %d: %s", op, where, c.binary, exit.ExitStatus(), clip(stderr))
	}
	var up *httpstream.UpgradeFailureError
	if errors.As(err, &up) && up.Cause != nil {
		err = up.Cause
	}
	msg := err.Error()
	if apierrors.IsForbidden(err) || strings.Contains(msg, "is forbidden") {
		return engine.Errorf(engine.KindForbidden, "%s: %s: exec is forbidden: %s; add to a Role: - apiGroups: [\"\"] resources: [\"pods/exec\"] verbs: [\"create\"]", op, where, msg)
	}
	if gone := c.gone(ctx); gone != "" {
		return fmt.Errorf("%s: %s %s: %w", op, where, gone, errAgentGone)
	}
	return fmt.Errorf("%s: %s: exec %s agent call: %v", op, where, c.binary, err)
}

// gone says how the agent pod went away, "" when it still runs.
func (c *conn) gone(ctx context.Context) string {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	p, err := c.cs.CoreV1().Pods(c.ns).Get(gctx, c.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "was deleted"
	case err != nil:
		return ""
	}
	if state, _ := podState(p); state != "" {
		return "is not running (" + state + ")"
	}
	return ""
}

// clip shortens s for an error message.
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// heldReader yields data, then blocks until close: the agent takes the
// end of its standard input as a cancellation, so it stays open until the
// answer is in.
type heldReader struct {
	data []byte
	done chan struct{}
	once sync.Once
}

func (r *heldReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.done
	return 0, io.EOF
}

func (r *heldReader) close() { r.once.Do(func() { close(r.done) }) }
