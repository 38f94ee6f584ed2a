package agent

import (
	"context"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
)

var _ node.Executor = (*Router)(nil)

// ops are the node operations an agent serves: find_pid, the node
// built-ins and strace_sample.
func ops() []node.Op {
	return append(append([]node.Op{cri.FindPID}, node.Ops()...), trace.Sample)
}

// Specs returns find_pid and the node built-ins (strace_sample included),
// served by r. Their declarations are those of packages cri, node and
// trace; only where they run changes.
func (r *Router) Specs() []*engine.Spec {
	specs := cri.SpecsFor(r, r.opts.Endpoints)
	specs = append(specs, node.SpecsFor(r)...)
	specs = append(specs, trace.Sample.Spec(r))
	for _, s := range specs {
		run := s.Run
		s.Run = func(ctx context.Context, c *engine.Call) (any, error) { return run(withCall(ctx, c), c) }
	}
	return specs
}

// locate serves a request about a pod (find_pid's) on the pod's node: it
// looks the pod up to learn the node, and remembers the node of the
// process found for the requests about it that follow. In auto mode a
// failed look-up falls back to this machine, as local mode does.
func (r *Router) locate(ctx context.Context, op node.Op, req any, pod node.Pod) (any, error) {
	if r.opts.Mode == ModeLocal {
		return op.Serve(ctx, req)
	}
	var n *nodeInfo
	if pod.Name != "" {
		ns := pod.Namespace
		if ns == "" {
			ns = "default"
		}
		name, ips, err := r.podNode(ctx, op.Name(), ns, pod.Name)
		switch {
		case err != nil && r.opts.Mode == ModeAuto:
			return op.Serve(ctx, req)
		case err != nil && kube.NoAnswer(ctx, err):
			if aerr := r.apiUnavailable(op.Name(), "for pod "+ns+"/"+pod.Name, err); aerr != nil {
				return nil, aerr
			}
			return nil, err
		case err != nil:
			return nil, err
		}
		n = r.learn(name, ns, ips, pod.Endpoint)
		r.aimFindPID(ctx, req, n)
	} else if n = r.nodeOf(0); n == nil && r.opts.Mode == ModeAgent {
		return nil, engine.Errorf(engine.KindInvalid, "%s: --node-mode=agent needs pod= (and namespace=) to know which node to ask; %s alone names no node", op.Name(), pod.Instead)
	}
	res, err := via(ctx, r, op, n, req)
	if err != nil && n != nil {
		err = r.runtimeNote(err, n)
	}
	if err == nil && n != nil {
		r.remember(op.Found(res), n)
	}
	if fr, ok := res.(*cri.FindPIDResult); ok && err == nil {
		fr.Where = r.where(n)
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
// the node where find_pid found that process (see nodeFor), and a
// request about a pod on the pod's node (see locate).
func (r *Router) Do(ctx context.Context, op node.Op, req any) (any, error) {
	if pod, ok := op.Pod(req); ok {
		return r.locate(ctx, op, req, pod)
	}
	n, err := r.nodeFor(op.Name(), op.PID(req))
	if err != nil {
		return nil, err
	}
	return via(ctx, r, op, n, req)
}
