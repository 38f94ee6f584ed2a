package node

import (
	"context"
	"fmt"
	"runtime"

	"github.com/kdiag/kdiag/engine"
)

// Executor serves node operations. Local serves them on this machine; the
// node agent's Router (package builtins/agent) serves each on the node of
// the process it is about, sending the JSON form of the request and
// decoding the result. Expected failures are returned as *engine.Error
// (kind and message, also JSON), anything else is an infrastructure
// failure.
type Executor interface {
	// Do serves req, a request of op (a *Req of its Row), and returns its
	// result (a *Res of its Row).
	Do(ctx context.Context, op Op, req any) (any, error)
}

// Op is a node operation seen without its types: what an Executor serves,
// what the node agent decodes and answers, and what the Router routes.
// Every *Row is an Op.
type Op interface {
	// Name is the built-in's name, which is also the agent protocol's op.
	Name() string
	// Spec declares the built-in, its requests served by x.
	Spec(x Executor) *engine.Spec
	// NewRequest returns a new, empty request (a *Req) to decode into.
	NewRequest() any
	// NewResult returns a new, empty result (a *Res) to decode into.
	NewResult() any
	// PID returns the process (in the node's PID namespace) that req is
	// about, 0 when it is about the node's own namespaces: the Router
	// sends it to the node of that process.
	PID(req any) int
	// Serve serves req on this machine: the Linux implementation, or a
	// refusal on another system.
	Serve(ctx context.Context, req any) (any, error)
	// Pod returns the pod req names and true for an operation about a
	// pod rather than a process (find_pid); false for the others. req
	// may be nil.
	Pod(req any) (Pod, bool)
	// Found returns the process (in the node's PID namespace) a result
	// of an operation about a pod names, 0 if none.
	Found(res any) int
	// Repeatable reports whether a request whose fate is unknown (the
	// stream to its node agent broke while it was in flight) may be sent
	// again: the built-in only reads (Effect read) and its Row is not
	// marked Once.
	Repeatable() bool
}

// Pod is the pod a request names, for an operation that finds a process
// from its pod (find_pid): the Router sends such a request to the pod's
// node and the requests about the process found after it.
type Pod struct {
	// Namespace and Name name the pod; Name is "" when the request names
	// no pod.
	Namespace, Name string
	// Endpoint is the container runtime endpoint the request asks for,
	// which the agent on the pod's node is given.
	Endpoint string
	// Instead says what names the target of a request without a pod,
	// e.g. "container_id=", for the error that such a request names no
	// node.
	Instead string
}

// Row is one node operation, a row of the table Ops returns: a built-in
// whose calls become a request of type Req, answered with a result of
// type Res (both plain JSON-serialisable structs), served on Linux by
// Linux. Everything else about serving it is derived from the row:
// Local's dispatch, the node agent's handler and permissions, the
// Router's routing and the refusal on other systems.
type Row[Req, Res any] struct {
	// Builtin is the built-in's name (the Spec's Name).
	Builtin string
	// Declare returns the built-in's Spec. Its Run builds a request from
	// the call's arguments and sends it with send, which serves it on the
	// Executor the Spec was made for.
	Declare func(send func(context.Context, *Req) (*Res, error)) *engine.Spec
	// Target returns the process a request is about (see Op.PID); nil
	// means 0, the node's own namespaces.
	Target func(*Req) int
	// Linux serves a request on this machine. It is called only on
	// Linux, so a row whose implementation builds on Linux only sets it
	// from an init function of its _linux.go file.
	Linux func(context.Context, *Req) (*Res, error)
	// Locate, set for an operation about a pod rather than a process,
	// returns the pod a request names (see Pod); Target is then unused.
	Locate func(*Req) Pod
	// FoundPID returns the process a result names, with Locate.
	FoundPID func(*Res) int
	// Once marks a built-in declared as a read whose request must still
	// not be sent twice when its fate is unknown (run: its command may
	// change things).
	Once bool
}

var _ Op = (*Row[ProcRequest, PSResult])(nil)

// Name implements Op.
func (r *Row[Req, Res]) Name() string { return r.Builtin }

// Spec implements Op.
func (r *Row[Req, Res]) Spec(x Executor) *engine.Spec {
	return r.Declare(func(ctx context.Context, req *Req) (*Res, error) { return r.Send(ctx, x, req) })
}

// NewRequest implements Op.
func (r *Row[Req, Res]) NewRequest() any { return new(Req) }

// NewResult implements Op.
func (r *Row[Req, Res]) NewResult() any { return new(Res) }

// PID implements Op; it is 0 for a request of another type.
func (r *Row[Req, Res]) PID(req any) int {
	q, ok := req.(*Req)
	if !ok || q == nil || r.Target == nil {
		return 0
	}
	return r.Target(q)
}

// Pod implements Op.
func (r *Row[Req, Res]) Pod(req any) (Pod, bool) {
	if r.Locate == nil {
		return Pod{}, false
	}
	q, ok := req.(*Req)
	if !ok || q == nil {
		return Pod{}, true
	}
	return r.Locate(q), true
}

// Found implements Op.
func (r *Row[Req, Res]) Found(res any) int {
	v, ok := res.(*Res)
	if !ok || v == nil || r.FoundPID == nil {
		return 0
	}
	return r.FoundPID(v)
}

// Repeatable implements Op.
func (r *Row[Req, Res]) Repeatable() bool {
	return !r.Once && r.Declare(nil).Effect == engine.Read
}

// Serve implements Op.
func (r *Row[Req, Res]) Serve(ctx context.Context, req any) (any, error) {
	q, ok := req.(*Req)
	if !ok || q == nil {
		return nil, fmt.Errorf("%s: request of type %T, want %T", r.Builtin, req, q)
	}
	res, err := r.Local(ctx, q)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Local serves req on this machine: with Linux on Linux, else a refusal
// of kind invalid.
func (r *Row[Req, Res]) Local(ctx context.Context, req *Req) (*Res, error) {
	if runtime.GOOS != "linux" {
		return nil, engine.Errorf(engine.KindInvalid, "%s: node built-ins need Linux (this is %s); run kdiag on the node", r.Builtin, runtime.GOOS)
	}
	if r.Linux == nil {
		return nil, fmt.Errorf("%s: this kdiag has no implementation of it", r.Builtin)
	}
	return r.Linux(ctx, req)
}

// Send serves req on x and returns its typed result.
func (r *Row[Req, Res]) Send(ctx context.Context, x Executor, req *Req) (*Res, error) {
	v, err := x.Do(ctx, r, req)
	if err != nil {
		return nil, err
	}
	res, ok := v.(*Res)
	if !ok || res == nil {
		return nil, fmt.Errorf("%s: the executor answered %T, want %T", r.Builtin, v, res)
	}
	return res, nil
}

// Local is the Executor of this machine. It needs Linux, and root (or
// CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_SYS_CHROOT) for most requests.
type Local struct{}

var _ Executor = Local{}

// Do implements Executor: it serves req with op's Linux implementation.
func (Local) Do(ctx context.Context, op Op, req any) (any, error) { return op.Serve(ctx, req) }
