package agent

import (
	"context"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
)

var (
	_ node.Executor = (*Router)(nil)
	_ cri.Finder    = (*Router)(nil)
)

// ops are the node operations an agent serves: find_pid, the node
// built-ins and strace_sample.
func ops() []node.Op {
	return append(append([]node.Op{cri.FindPID}, node.Ops()...), trace.Sample)
}

// Specs returns find_pid and the node built-ins (strace_sample included),
// served by r. Their declarations are those of packages cri and node; only
// where they run changes.
func (r *Router) Specs() []*engine.Spec {
	specs := cri.SpecsFor(r, r.opts.RuntimeEndpoint)
	specs = append(specs, node.SpecsFor(r)...)
	specs = append(specs, trace.Sample.Spec(r))
	for _, s := range specs {
		run := s.Run
		s.Run = func(ctx context.Context, c *engine.Call) (any, error) { return run(withCall(ctx, c), c) }
	}
	return specs
}

// FindPID finds the container on the node of its pod: it looks the pod up
// to learn the node, and remembers the node of the PID found for the node
// built-ins that follow. In auto mode a failed look-up falls back to this
// machine, as local mode does.
func (r *Router) FindPID(ctx context.Context, req *cri.FindPIDRequest) (*cri.FindPIDResult, error) {
	local := cri.Local{}.FindPID
	if r.opts.Mode == ModeLocal {
		return local(ctx, req)
	}
	var n *nodeInfo
	if req.Pod != "" {
		ns := req.Namespace
		if ns == "" {
			ns = "default"
		}
		name, ips, err := r.podNode(ctx, ns, req.Pod)
		switch {
		case err != nil && r.opts.Mode == ModeAuto:
			return local(ctx, req)
		case err != nil:
			return nil, err
		}
		n = r.learn(name, ns, ips, firstSet(req.RuntimeEndpoint, req.FlagEndpoint, req.EnvEndpoint))
	} else if n = r.nodeOf(0); n == nil && r.opts.Mode == ModeAgent {
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: --node-mode=agent needs pod= (and namespace=) to know which node to ask; container_id= alone names no node")
	}
	var res *cri.FindPIDResult
	var err error
	if n == nil || r.opts.Mode == ModeAuto && r.isLocal(n) {
		res, err = local(ctx, req)
	} else {
		res, err = cri.FindPID.Send(ctx, routed{r, n}, req)
	}
	if err == nil && n != nil {
		r.remember(res.PID, n)
	}
	return res, err
}

// nodeFor returns the node a request about pid goes to (nil: this
// machine).
func (r *Router) nodeFor(op string, pid int) (*nodeInfo, error) {
	if r.opts.Mode == ModeLocal {
		return nil, nil
	}
	n := r.nodeOf(pid)
	if n == nil && r.opts.Mode == ModeAgent {
		return nil, noNode(op, pid)
	}
	return n, nil
}

// Do implements node.Executor: it serves a request about a process on
// the node where find_pid found that process (see nodeFor).
func (r *Router) Do(ctx context.Context, op node.Op, req any) (any, error) {
	n, err := r.nodeFor(op.Name(), op.PID(req))
	if err != nil {
		return nil, err
	}
	return via(ctx, r, op, n, req)
}

// routed is the Executor of one request whose node is already known.
type routed struct {
	r *Router
	n *nodeInfo
}

func (x routed) Do(ctx context.Context, op node.Op, req any) (any, error) {
	return via(ctx, x.r, op, x.n, req)
}

// firstSet returns the first non-empty string.
func firstSet(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
