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
	_ trace.Tracer  = (*Router)(nil)
	_ cri.Finder    = (*Router)(nil)
)

// Specs returns find_pid and the node built-ins (strace_sample included),
// served by r. Their declarations are those of packages cri and node; only
// where they run changes.
func (r *Router) Specs() []*engine.Spec {
	specs := cri.SpecsFor(r, r.opts.RuntimeEndpoint)
	specs = append(specs, node.SpecsFor(r)...)
	specs = append(specs, trace.SpecFor(r))
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
	res, err := via(ctx, r, "find_pid", n, req, local)
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

// route serves a request about pid with the local function or the agent.
func route[Req, Res any](ctx context.Context, r *Router, op string, pid int, req *Req,
	local func(context.Context, *Req) (*Res, error)) (*Res, error) {
	n, err := r.nodeFor(op, pid)
	if err != nil {
		return nil, err
	}
	return via(ctx, r, op, n, req, local)
}

func targetPID(t *node.Target) int {
	if t == nil {
		return 0
	}
	return t.PID
}

// EnterNS implements node.Executor.
func (r *Router) EnterNS(ctx context.Context, req *node.EnterNSRequest) (*node.NSHandle, error) {
	return route(ctx, r, "enter_ns", req.PID, req, node.Local{}.EnterNS)
}

// Run implements node.Executor.
func (r *Router) Run(ctx context.Context, req *node.RunRequest) (*node.RunResult, error) {
	return route(ctx, r, "run", req.Target.PID, req, node.Local{}.Run)
}

// HTTPProbe implements node.Executor.
func (r *Router) HTTPProbe(ctx context.Context, req *node.HTTPProbeRequest) (*node.HTTPProbeResult, error) {
	return route(ctx, r, "http_probe", targetPID(req.Target), req, node.Local{}.HTTPProbe)
}

// TCPProbe implements node.Executor.
func (r *Router) TCPProbe(ctx context.Context, req *node.TCPProbeRequest) (*node.TCPProbeResult, error) {
	return route(ctx, r, "tcp_probe", targetPID(req.Target), req, node.Local{}.TCPProbe)
}

// ReadFile implements node.Executor.
func (r *Router) ReadFile(ctx context.Context, req *node.FileRequest) (*node.ReadFileResult, error) {
	return route(ctx, r, "read_file", req.Target.PID, req, node.Local{}.ReadFile)
}

// ListDir implements node.Executor.
func (r *Router) ListDir(ctx context.Context, req *node.FileRequest) (*node.ListDirResult, error) {
	return route(ctx, r, "list_dir", req.Target.PID, req, node.Local{}.ListDir)
}

// Stat implements node.Executor.
func (r *Router) Stat(ctx context.Context, req *node.FileRequest) (*node.StatResult, error) {
	return route(ctx, r, "stat", req.Target.PID, req, node.Local{}.Stat)
}

// PS implements node.Executor.
func (r *Router) PS(ctx context.Context, req *node.ProcRequest) (*node.PSResult, error) {
	return route(ctx, r, "ps", req.Target.PID, req, node.Local{}.PS)
}

// OpenFiles implements node.Executor.
func (r *Router) OpenFiles(ctx context.Context, req *node.ProcRequest) (*node.OpenFilesResult, error) {
	return route(ctx, r, "open_files", req.Target.PID, req, node.Local{}.OpenFiles)
}

// Sockets implements node.Executor.
func (r *Router) Sockets(ctx context.Context, req *node.ProcRequest) (*node.SocketsResult, error) {
	return route(ctx, r, "sockets", req.Target.PID, req, node.Local{}.Sockets)
}

// Mounts implements node.Executor.
func (r *Router) Mounts(ctx context.Context, req *node.ProcRequest) (*node.MountsResult, error) {
	return route(ctx, r, "mounts", req.Target.PID, req, node.Local{}.Mounts)
}

// Environ implements node.Executor.
func (r *Router) Environ(ctx context.Context, req *node.ProcRequest) (*node.EnvironResult, error) {
	return route(ctx, r, "environ", req.Target.PID, req, node.Local{}.Environ)
}

// Sample implements trace.Tracer.
func (r *Router) Sample(ctx context.Context, req *trace.Request) (*trace.Result, error) {
	return route(ctx, r, "strace_sample", req.PID, req, trace.Local{}.Sample)
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
