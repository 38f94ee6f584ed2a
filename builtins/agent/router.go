package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says where node built-ins run.
type Mode string

// The node modes.
const (
	// ModeLocal runs every node built-in on this machine.
	ModeLocal Mode = "local"
	// ModeAgent runs every node built-in in an agent pod on the node of
	// the pod find_pid was asked about.
	ModeAgent Mode = "agent"
	// ModeAuto runs a node built-in on this machine when it is the pod's
	// node, in an agent pod otherwise.
	ModeAuto Mode = "auto"
)

// ParseMode parses --node-mode; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeLocal, ModeAgent, ModeAuto:
		return m, nil
	}
	return "", fmt.Errorf("--node-mode=%s: want local, agent or auto", s)
}

// Defaults of Options.
const (
	// DefaultBinary is where the agent image holds kdiag.
	DefaultBinary = "/kdiag"
	// DefaultActiveDeadline bounds an agent pod's life if nobody deletes it.
	DefaultActiveDeadline = time.Hour
)

// Options configure a Router.
type Options struct {
	// Mode is where node built-ins run; "" is ModeAuto.
	Mode Mode
	// Clients reach the cluster (lazily).
	Clients kube.Clients
	// Image is the agent pod's image, an image of this kdiag; "" is
	// DefaultImage.
	Image string
	// Binary is kdiag's path in Image; "" is DefaultBinary.
	Binary string
	// Namespace is where agent pods are created; "" is the namespace of
	// the pod whose node they serve.
	Namespace string
	// Endpoints returns kdiag's --runtime-endpoint and
	// $CONTAINER_RUNTIME_ENDPOINT, for find_pid on this machine and as the
	// last resort of an agent.
	Endpoints func() cri.Endpoints
	// ActiveDeadline bounds an agent pod's life; 0 is DefaultActiveDeadline.
	ActiveDeadline time.Duration
}

// Router is the node.Executor of
// one kdiag: it serves each request on this machine or in the agent pod of
// the node the request is about, creating that pod on first use. Build
// one per run (builtins.All does).
type Router struct {
	opts  Options
	runID string

	mu      sync.Mutex
	nodes   map[string]*nodeInfo // by node name
	pidNode map[int]string       // host PID -> node, from find_pid
	last    string               // the node of the last find_pid
	agents  map[string]*agentPod // live agents by node
	all     []*agentPod          // every agent created, for Close
	// apiDown is set when a request failed and the API server did not
	// answer /readyz/ping: later requests check it first (see
	// apiUnavailable) instead of waiting out their deadline.
	apiDown bool
}

// nodeInfo is what the Router learnt of a node from a pod on it.
type nodeInfo struct {
	name      string
	namespace string   // of the pod that named it: the agent's default namespace
	hostIPs   []string // the pod's status.hostIPs
	endpoint  string   // the CRI endpoint of the find_pid that named it
	local     *bool    // decided once: is it this machine?
	// runtime is the CRI endpoint of the node's kubelet, once read.
	runtime     string
	runtimeRead bool
	// runtimeWhy says why the kubelet's configuration named no endpoint
	// ("" when it did, or was not read).
	runtimeWhy string
}

// New returns a Router. Nothing is connected until a request needs the
// cluster.
func New(opts Options) *Router {
	if opts.Mode == "" {
		opts.Mode = ModeAuto
	}
	if opts.Image == "" {
		opts.Image = DefaultImage()
	}
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if opts.Endpoints == nil {
		opts.Endpoints = func() cri.Endpoints { return cri.Endpoints{} }
	}
	if opts.ActiveDeadline <= 0 {
		opts.ActiveDeadline = DefaultActiveDeadline
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &Router{
		opts: opts, runID: hex.EncodeToString(b),
		nodes: map[string]*nodeInfo{}, pidNode: map[int]string{}, agents: map[string]*agentPod{},
	}
}

// RunID is the value of the kdiag.io/run label of this Router's agent pods.
func (r *Router) RunID() string { return r.runID }

// learn records the node of a pod that find_pid was asked about.
func (r *Router) learn(name, namespace string, hostIPs []string, endpoint string) *nodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nodes[name]
	if n == nil {
		n = &nodeInfo{name: name}
		r.nodes[name] = n
	}
	n.namespace, n.hostIPs, n.endpoint = namespace, hostIPs, endpoint
	r.last = name
	return n
}

// nodeOf returns the node a node built-in about pid goes to: where
// find_pid found pid, else the node of the last find_pid; nil when no
// find_pid ran yet.
func (r *Router) nodeOf(pid int) *nodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name, ok := r.pidNode[pid]; ok && pid > 0 {
		return r.nodes[name]
	}
	return r.nodes[r.last]
}

// remember records the node on which find_pid found pid.
func (r *Router) remember(pid int, n *nodeInfo) {
	r.mu.Lock()
	r.pidNode[pid] = n.name
	r.mu.Unlock()
}

// isLocal decides, once per node, whether n is this machine.
func (r *Router) isLocal(n *nodeInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n.local == nil {
		l := thisMachine(n.name, n.hostIPs)
		n.local = &l
	}
	return *n.local
}

// noNode is the error of a node built-in in agent mode before any pod
// (and so any node) is known.
func noNode(op string, pid int) error {
	what := "the node's own namespaces"
	if pid > 0 {
		what = fmt.Sprintf("pid %d", pid)
	}
	return engine.Errorf(engine.KindInvalid, "%s: --node-mode=agent runs node built-ins on the node of a pod, and no pod is known yet for %s: call find_pid(pod=..., namespace=...) first", op, what)
}

// agentFor returns the running agent of node n, creating it (and
// collecting left-overs) first if needed. The caller must release it.
func (r *Router) agentFor(ctx context.Context, op string, n *nodeInfo) (*agentPod, error) {
	cs, rc, err := r.opts.Clients.Kube()
	if err != nil {
		return nil, fmt.Errorf("%s: node agent: %w", op, err)
	}
	r.mu.Lock()
	a := r.agents[n.name]
	if a == nil {
		ns := r.opts.Namespace
		if ns == "" {
			ns = n.namespace
		}
		if ns == "" {
			ns = r.opts.Clients.Namespace()
		}
		a = &agentPod{r: r, endpoint: n.endpoint, conn: conn{cs: cs, rc: rc, ns: ns, name: newPodName(), node: n.name, binary: r.opts.Binary}}
		r.agents[n.name] = a
	}
	a.inflight.Add(1)
	r.mu.Unlock()
	if err := a.start(ctx, op); err != nil {
		a.inflight.Done()
		return nil, err
	}
	return a, nil
}

// drop forgets agent a, so that the next request creates a new one.
func (r *Router) drop(a *agentPod) {
	r.mu.Lock()
	if r.agents[a.node] == a {
		delete(r.agents, a.node)
	}
	r.mu.Unlock()
}

// Close deletes every agent pod this Router created and has not deleted
// yet. Runs made through the engine need not call it: each agent pod's
// deletion is registered with Call.Defer when it is created.
func (r *Router) Close(ctx context.Context) error {
	r.mu.Lock()
	all := append([]*agentPod(nil), r.all...)
	r.mu.Unlock()
	var errs []error
	for _, a := range all {
		errs = append(errs, a.delete(ctx))
	}
	return errors.Join(errs...)
}

// via serves one request of op: locally, or over the session of the
// agent of the request's node. A request whose session could not open
// because the agent pod went away is retried once with a new agent; a
// request whose session broke while it was in flight is retried once (on
// a new session, with a new agent if the pod went away) only when op is
// repeatable (node.Op.Repeatable): the agent may have served it already.
//
// The agent's pod and its session (an exec stream) go through the API
// server: a request that fails without an answer, when the API server
// does not answer either, fails with an unavailable error naming it.
func via(ctx context.Context, r *Router, op node.Op, n *nodeInfo, req any) (any, error) {
	if r.opts.Mode == ModeLocal || n == nil || r.opts.Mode == ModeAuto && r.isLocal(n) {
		return op.Serve(ctx, req)
	}
	r.mu.Lock()
	down := r.apiDown
	r.mu.Unlock()
	if down {
		if err := r.apiUnavailable(op.Name(), "on node "+n.name, nil); err != nil {
			return nil, err
		}
	}
	res, err := viaAgent(ctx, r, op, n, req)
	if err != nil && (ctx.Err() != nil || errors.Is(err, errAgentGone) || errors.Is(err, errBroken) || errors.Is(err, errAPIStalled) || kube.NoAnswer(ctx, err)) {
		if aerr := r.apiUnavailable(op.Name(), "on node "+n.name, err); aerr != nil {
			return nil, aerr
		}
	}
	return res, err
}

// apiHealthTimeout bounds the API server's health check after a failed
// agent request.
const apiHealthTimeout = 3 * time.Second

// apiUnavailable asks the API server's /readyz/ping and verbose /readyz
// at once (apiHealthTimeout): when it does not answer, or answers the ping
// but not /readyz because its storage (etcd) does not, it returns an
// unavailable error for op that names the API server (or its storage)
// and the agent's node (err, when not nil, is the request's own) and
// remembers it for the next requests; when it answers, nil.
func (r *Router) apiUnavailable(op, where string, err error) error {
	cs, rc, cerr := r.opts.Clients.Kube()
	if cerr != nil {
		return nil
	}
	hctx, cancel := context.WithTimeout(context.Background(), apiHealthTimeout)
	defer cancel()
	pinged := make(chan error, 1)
	go func() { pinged <- cs.Discovery().RESTClient().Get().AbsPath("/readyz/ping").Do(hctx).Error() }()
	storage := kube.StorageNotAnswering(hctx, cs)
	herr := <-pinged
	r.mu.Lock()
	was := r.apiDown
	r.apiDown = herr != nil || storage != ""
	r.mu.Unlock()
	if herr == nil && storage == "" {
		return nil
	}
	var msg string
	switch {
	case herr == nil && was:
		msg = fmt.Sprintf("%s: the API server at %s answers, but its storage still does not (%s; /readyz/ping answers): the node agent %s is reached through it (its pod and an exec stream), so node built-ins cannot run there until etcd answers; check etcd's health, disk latency and logs (etcdctl endpoint health), then the kube-apiserver's logs",
			op, rc.Host, storage, where)
	case herr == nil:
		msg = fmt.Sprintf("%s: the API server at %s answers, but its storage does not (%s; /readyz/ping answers): the node agent %s is reached through it (its pod and an exec stream), so node built-ins cannot run there until etcd answers; check etcd's health, disk latency and logs (etcdctl endpoint health), then the kube-apiserver's logs",
			op, rc.Host, storage, where)
	case err == nil && was:
		msg = fmt.Sprintf("%s: the API server at %s is still not answering (/readyz/ping: %s): the node agent %s is reached through it (its pod and an exec stream), so node built-ins cannot run there until it answers; check the control plane: kubectl get --raw /readyz",
			op, rc.Host, kube.Reason(herr), where)
	default:
		msg = fmt.Sprintf("%s: the API server at %s did not answer (/readyz/ping: %s): the node agent %s is reached through it (its pod and an exec stream), so node built-ins cannot run there until it answers; check the control plane: kubectl get --raw /readyz",
			op, rc.Host, kube.Reason(herr), where)
	}
	if err == nil {
		return engine.Errorf(engine.KindUnavailable, "%s", msg)
	}
	return engine.Wrapf(engine.KindUnavailable, err, "%s (%v)", msg, err)
}

// viaAgent serves one request of op over the session of the agent of
// node n (see via).
func viaAgent(ctx context.Context, r *Router, op node.Op, n *nodeInfo, req any) (any, error) {
	for attempt := 0; ; attempt++ {
		a, err := r.agentFor(ctx, op.Name(), n)
		if err != nil {
			return nil, err
		}
		res := op.NewResult()
		err = a.call(ctx, op.Name(), req, res)
		a.inflight.Done()
		gone, broken := errors.Is(err, errAgentGone), errors.Is(err, errBroken)
		if gone {
			r.drop(a)
		}
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil:
			return nil, err
		case errors.Is(err, errAPIStalled):
			// A new session would go through the same API server: via
			// names it.
			return nil, err
		case broken && !op.Repeatable():
			return nil, engine.Wrapf(engine.KindUnavailable, err, "%v; not retried: %s may have had effects on the node", err, op.Name())
		case (gone || broken) && attempt == 0:
			continue
		case gone:
			return nil, engine.Wrapf(engine.KindUnavailable, err, "%v (a second agent pod went away too: is node %s being drained or lost?)", err, n.name)
		case broken:
			return nil, engine.Wrapf(engine.KindUnavailable, err, "%v (the second session in a row to break)", err)
		}
		return nil, err
	}
}

// podNode looks up the node of pod namespace/name for op (find_pid).
func (r *Router) podNode(ctx context.Context, op, namespace, name string) (node string, hostIPs []string, err error) {
	cs, _, err := r.opts.Clients.Kube()
	if err != nil {
		return "", nil, fmt.Errorf("%s: node agent: %w", op, err)
	}
	p, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil, engine.Errorf(engine.KindNotFound, "%s: pod %q not found (looked up for its node)", op, namespace+"/"+name)
	case apierrors.IsForbidden(err):
		return "", nil, engine.Errorf(engine.KindForbidden, "%s: cannot get pod %q to find its node: %v; add to a Role: - apiGroups: [\"\"] resources: [\"pods\"] verbs: [\"get\"]", op, namespace+"/"+name, err)
	case err != nil:
		return "", nil, fmt.Errorf("%s: get pod %q for its node: %w", op, namespace+"/"+name, err)
	case p.Spec.NodeName == "":
		return "", nil, engine.Errorf(engine.KindNotFound, "%s: pod %q is not scheduled on a node yet", op, namespace+"/"+name)
	}
	for _, ip := range p.Status.HostIPs {
		hostIPs = append(hostIPs, ip.IP)
	}
	if len(hostIPs) == 0 && p.Status.HostIP != "" {
		hostIPs = []string{p.Status.HostIP}
	}
	return p.Spec.NodeName, hostIPs, nil
}
