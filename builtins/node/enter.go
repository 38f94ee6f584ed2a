package node

import (
	"context"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// EnterNSRequest asks for a handle on a process's namespaces.
type EnterNSRequest struct {
	// PID is the process in the node's PID namespace.
	PID int `json:"pid"`
	// Namespaces are the namespaces the handle will join.
	Namespaces []string `json:"namespaces"`
}

// EnterNS is enter_ns: a handle on a process's namespaces.
var EnterNS = &Row[EnterNSRequest, NSHandle]{
	Builtin: "enter_ns",
	Declare: enterNSSpec,
	Target:  func(r *EnterNSRequest) int { return r.PID },
}

func enterNSSpec(send func(context.Context, *EnterNSRequest) (*NSHandle, error)) *engine.Spec {
	return &engine.Spec{
		Name: "enter_ns",
		Doc: `enter_ns returns a handle on a process's namespaces for run, http_probe, tcp_probe
and the container-view built-ins (pass it as ns=). Nothing is joined yet:
each use joins the namespaces on a thread of its own, after checking that
the process still exists and still has the same namespaces, so a PID reused
by another process is noticed. Fails with kind "gone" when the process does
not exist. The user namespace cannot be joined.`,
		Params: []engine.Param{
			{Name: "pid", Type: "int", Required: true, Doc: "the process, in the node's PID namespace (from find_pid)"},
			{Name: "namespaces", Type: "list", Default: []any{"net", "pid", "uts", "ipc", "mnt"}, Doc: "namespaces to join: net, pid, uts, ipc, mnt, cgroup"},
		},
		Result: `pid: the process, in the node's PID namespace
namespaces: the namespaces the handle joins
inodes: the identity of each namespace, e.g. {"net": "net:[4026532281]"}`,
		Effect:  engine.Read,
		Timeout: 5 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			ns, err := checkNamespaces("enter_ns", c.Args.Strings("namespaces"))
			if err != nil {
				return nil, err
			}
			pid := int(c.Args.Int("pid"))
			if pid <= 0 {
				return nil, engine.Errorf(engine.KindInvalid, "enter_ns: pid must be a positive process id, got %d", pid)
			}
			return send(ctx, &EnterNSRequest{PID: pid, Namespaces: ns})
		},
	}
}
