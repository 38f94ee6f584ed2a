package agent

import (
	"bytes"
	"context"
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

// conn reaches one agent pod: sessions are pods/exec of
// `kdiag agent session` in its container.
type conn struct {
	cs     kubernetes.Interface
	rc     *rest.Config
	ns     string
	name   string
	node   string
	binary string
}

// where names the agent pod and its node, for errors.
func (c *conn) where() string {
	return fmt.Sprintf("node agent %s/%s on node %s", c.ns, c.name, c.node)
}

// open starts a session: one exec whose standard input carries the
// requests and standard output the answers, for as long as the session
// lasts. It returns once the agent said hello. watch, when not nil,
// watches what carries the stream while the hello is awaited (see
// Router.watchAPI).
func (c *conn) open(ctx context.Context, op string, watch func(*session) func()) (*session, Hello, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	xctx, stop := context.WithCancel(context.Background())
	ended := make(chan struct{})
	s := newSession(c.where(), inW, outR, stop, ended)
	go func() {
		defer close(ended)
		stderr := &cappedBuffer{max: 16 << 10}
		err := c.exec(xctx, inR, outW, stderr)
		if err != nil {
			err = c.execError(xctx, err, stderr.String())
		}
		// The reader sees the exec's end as the end of the answers; the
		// exec's copy of the standard input (if still running) sees its
		// end.
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
		inW.Close()
	}()
	if watch != nil {
		defer watch(s)()
	}
	h, err := s.waitHello(ctx, op)
	if err != nil {
		s.close(context.Background())
		return nil, Hello{}, err
	}
	return s, h, nil
}

// exec runs `kdiag agent session` in the agent container, over WebSocket
// and falling back to SPDY, as kubectl exec does.
func (c *conn) exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	req := c.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(c.ns).Name(c.name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: containerName, Command: []string{c.binary, "agent", "session"}, Stdin: true, Stdout: true, Stderr: true,
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

// execError explains the end of a session's exec: an agent pod that went
// away (errAgentGone), a refusal, `kdiag agent session` failing (an agent
// image of an older kdiag has no such command), or the stream's failure.
func (c *conn) execError(ctx context.Context, err error, stderr string) error {
	if ctx.Err() != nil {
		return errors.New("the session was closed")
	}
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		if gone := c.gone(ctx); gone != "" {
			return fmt.Errorf("the agent pod %s: %w", gone, errAgentGone)
		}
		hint := ""
		if strings.Contains(stderr, "(idle or call)") {
			hint = " (the agent image holds an older kdiag, without sessions: use an agent image of this kdiag version, --agent-image)"
		}
		if stderr = clip(stderr); stderr != "" {
			hint += ": " + stderr
		}
		return fmt.Errorf("%s agent session exited with code %d%s", c.binary, exit.ExitStatus(), hint)
	}
	var up *httpstream.UpgradeFailureError
	if errors.As(err, &up) && up.Cause != nil {
		err = up.Cause
	}
	msg := err.Error()
	if apierrors.IsForbidden(err) || strings.Contains(msg, "is forbidden") {
		return engine.Errorf(engine.KindForbidden, "exec is forbidden: %s; add to a Role: - apiGroups: [\"\"] resources: [\"pods/exec\"] verbs: [\"create\"]", msg)
	}
	if gone := c.gone(ctx); gone != "" {
		return fmt.Errorf("the agent pod %s: %w", gone, errAgentGone)
	}
	return fmt.Errorf("exec %s agent session: %v", c.binary, err)
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

// cappedBuffer keeps the first max bytes written to it (the agent's
// standard error), discarding the rest.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
