package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// agentPod is one agent pod of a Router: created on first use, kept alive
// by a heartbeat, deleted when the run that created it ends.
type agentPod struct {
	conn
	r        *Router
	endpoint string
	// inflight counts the requests using the pod; deletion waits for them.
	inflight sync.WaitGroup

	smu  sync.Mutex // serialises opening and closing sessions
	sess *session   // the current session, nil before the first call

	mu       sync.Mutex // serialises start and delete; guards sessions and pid
	sessions int        // sessions opened
	pid      int        // the current session's process, from its hello
	created  bool
	running  bool
	deleted  bool
	// startFailed is set when the pod did not start within a request's
	// deadline: the next requests wait for it only restartWait.
	startFailed bool
	stopBeat    context.CancelFunc
	beatDone    chan struct{}
}

// start creates the pod, if not yet done, and waits until it runs. Before
// creating it, it deletes the agent pods that dead kdiags left in the
// namespace. The pod's deletion is registered with the engine call in ctx
// (Call.Defer), so that it happens when the run ends, however it ends.
func (a *agentPod) start(ctx context.Context, op string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	where := a.where()
	switch {
	case a.deleted:
		return fmt.Errorf("%s: %s was deleted: %w", op, where, errAgentGone)
	case a.running:
		return nil
	}
	if !a.created {
		if _, err := collect(ctx, a.cs, a.ns, a.r.runID, time.Now()); err != nil {
			return apiError(op, err, "list and delete left-over agent pods", "pods", "list\", \"delete")
		}
		pod := podSpec(podConfig{
			Name: a.name, Namespace: a.ns, Node: a.node, Image: a.r.opts.Image, Binary: a.binary,
			RunID: a.r.runID, SocketDir: socketDir(a.endpoint), ActiveDeadline: a.r.opts.ActiveDeadline, Now: time.Now(),
		})
		if _, err := a.cs.CoreV1().Pods(a.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return apiError(op, err, fmt.Sprintf("create agent pod %s/%s on node %s", a.ns, a.name, a.node), "pods", "create")
		}
		a.created = true
		a.r.mu.Lock()
		a.r.all = append(a.r.all, a)
		a.r.mu.Unlock()
		if c := callFrom(ctx); c != nil {
			c.Defer(fmt.Sprintf("delete node agent pod %s/%s", a.ns, a.name), a.retire)
		}
		a.beat()
	}
	if a.startFailed {
		// It did not start for an earlier request: look again briefly
		// rather than wait out this request's deadline too.
		wctx, cancel := context.WithTimeout(ctx, restartWait)
		err := waitRunning(wctx, a.cs, a.ns, a.name)
		cancel()
		if err != nil && ctx.Err() == nil {
			return engine.Wrapf(engine.KindUnavailable, err, "%s: node agent still not started (looked again for %s): %v", op, restartWait, err)
		}
		if err != nil {
			return fmt.Errorf("%s: node agent: %w", op, err)
		}
	} else if err := waitRunning(ctx, a.cs, a.ns, a.name); err != nil {
		a.startFailed = ctx.Err() != nil
		if engine.KindOf(err) == engine.KindUnavailable {
			return fmt.Errorf("%s: %w", op, err) // it names the component first
		}
		return fmt.Errorf("%s: node agent: %w", op, err)
	}
	a.running = true
	return nil
}

// restartWait is how long a request waits for an agent pod that did not
// start for an earlier request.
const restartWait = 5 * time.Second

// beat refreshes the heartbeat annotation every heartbeatEvery until
// delete stops it or the pod is gone.
func (a *agentPod) beat() {
	ctx, stop := context.WithCancel(context.Background())
	a.stopBeat, a.beatDone = stop, make(chan struct{})
	go func() {
		defer close(a.beatDone)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := heartbeat(bctx, a.cs, a.ns, a.name, now)
				cancel()
				if apierrors.IsNotFound(err) {
					return
				}
			}
		}
	}()
}

// retire is the run-end cleanup: new requests get a new agent, the ones
// in flight finish (or ctx ends), then the pod is deleted.
func (a *agentPod) retire(ctx context.Context) error {
	a.r.drop(a)
	done := make(chan struct{})
	go func() {
		a.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err := a.delete(ctx); errors.Is(err, errTerminating) {
		return err
	} else if err != nil {
		// Recorded in the footer's cleanups: say what is left and what
		// removes it.
		return fmt.Errorf("%w; agent pod %s/%s is left behind: kubectl delete pod -n %s %s (the next kdiag run that starts an agent in %s deletes it once its heartbeat is %s old; activeDeadlineSeconds ends it after %s)",
			err, a.ns, a.name, a.ns, a.name, a.ns, staleAfter, a.r.opts.ActiveDeadline)
	}
	return nil
}

// call serves one request of op over the pod's session, opening one
// first when there is none or the last one broke.
func (a *agentPod) call(ctx context.Context, op string, req, res any) error {
	s, err := a.session(ctx, op)
	if err != nil {
		return err
	}
	defer a.r.watchAPI(s)()
	return s.call(ctx, op, req, res)
}

// session returns the pod's open session, opening a new one if needed.
func (a *agentPod) session(ctx context.Context, op string) (*session, error) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.sess != nil && !a.sess.broken() {
		return a.sess, nil
	}
	if a.sess != nil {
		a.sess.close(ctx)
		a.sess = nil
	}
	a.mu.Lock()
	deleted := a.deleted
	a.mu.Unlock()
	if deleted {
		return nil, fmt.Errorf("%s: %s was deleted: %w", op, a.where(), errAgentGone)
	}
	s, h, err := a.open(ctx, op, a.r.watchAPI)
	if err != nil {
		return nil, err
	}
	a.sess = s
	a.mu.Lock()
	a.sessions++
	a.pid = h.PID
	a.mu.Unlock()
	return s, nil
}

// opened returns how many sessions were opened to the pod and the PID of
// the last one's process (on the node).
func (a *agentPod) opened() (sessions, pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions, a.pid
}

// closeSession ends the pod's session, if any, and waits until its exec
// is over (until ctx ends).
func (a *agentPod) closeSession(ctx context.Context) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.sess != nil {
		a.sess.close(ctx)
		a.sess = nil
	}
}

// delete ends the session, stops the heartbeat, deletes the pod and waits
// until it is gone.
func (a *agentPod) delete(ctx context.Context) error {
	a.mu.Lock()
	if !a.created || a.deleted {
		a.mu.Unlock()
		return nil
	}
	a.deleted = true
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a.closeSession(sctx)
	cancel()
	a.mu.Lock()
	a.stopBeat()
	<-a.beatDone
	a.mu.Unlock()
	return deletePod(ctx, a.cs, a.ns, a.name)
}

// apiError classifies an API error of the agent's own requests: a
// refusal names the Role rule to add.
func apiError(op string, err error, what, resource, verbs string) error {
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity") {
		return engine.Errorf(engine.KindForbidden, "%s: node agent: %s: %v; the agent pod is privileged: pass --agent-namespace a namespace whose pod-security.kubernetes.io/enforce level is privileged", op, what, err)
	}
	if apierrors.IsForbidden(err) {
		return engine.Errorf(engine.KindForbidden, "%s: node agent: %s: forbidden: %v; add to a Role: - apiGroups: [\"\"] resources: [%q] verbs: [\"%s\"]", op, what, err, resource, verbs)
	}
	return fmt.Errorf("%s: node agent: %s: %w", op, what, err)
}

// callKey is the context key of the engine call being served.
type callKey struct{}

// withCall returns ctx carrying the engine call c.
func withCall(ctx context.Context, c *engine.Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// callFrom returns the engine call in ctx, or nil.
func callFrom(ctx context.Context) *engine.Call {
	c, _ := ctx.Value(callKey{}).(*engine.Call)
	return c
}
