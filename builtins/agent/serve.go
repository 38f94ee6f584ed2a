package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
)

// handler serves one op: it decodes the request and runs it on this node.
type handler func(ctx context.Context, req json.RawMessage) (any, error)

// handle serves a node operation with its Linux implementation.
func handle(op node.Op) handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		req := op.NewRequest()
		if err := json.Unmarshal(raw, req); err != nil {
			return nil, fmt.Errorf("%s: node agent: cannot decode the request: %v", op.Name(), err)
		}
		return op.Serve(ctx, req)
	}
}

// handlers are the ops the agent serves, each with this node's executor.
func handlers() map[string]handler {
	hs := map[string]handler{}
	for _, op := range ops() {
		hs[op.Name()] = handle(op)
	}
	return hs
}

// Serve is the agent's side of one call (`kdiag agent call`): it reads a
// Request from in, serves it on this node with the operation's Linux implementation
// and writes one Response to out. Failures of the request, including a
// protocol version other than ProtocolVersion, are answered as a Response
// with an error; Serve itself fails only when out cannot be written.
//
// After the request, Serve keeps reading in: when in ends or fails (kdiag
// closed the stream, or went away) the request is cancelled, so that a
// trace detaches and a command is killed. kdiag therefore keeps the
// stream open until it has the answer.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dec := json.NewDecoder(in)
	var req Request
	resp := Response{V: ProtocolVersion}
	var res any
	var err error
	if derr := dec.Decode(&req); derr != nil {
		err = fmt.Errorf("node agent: cannot decode the request envelope: %v", derr)
	} else {
		go func() {
			_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
			cancel()
		}()
		res, err = serve(ctx, &req)
	}
	if err != nil {
		resp.Error = wireError(err)
	} else if resp.Result, err = json.Marshal(res); err != nil {
		resp.Error = wireError(fmt.Errorf("%s: node agent: cannot encode the result: %v", req.Op, err))
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// serve checks the envelope and runs the op, turning a panic into an
// infrastructure error.
func serve(ctx context.Context, req *Request) (res any, err error) {
	if req.V != ProtocolVersion {
		return nil, &VersionError{Agent: ProtocolVersion, Kdiag: req.V}
	}
	hs := handlers()
	h := hs[req.Op]
	if h == nil {
		ops := make([]string, 0, len(hs))
		for op := range hs {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		return nil, fmt.Errorf("node agent: unknown op %q (protocol v%d serves %s)", req.Op, ProtocolVersion, strings.Join(ops, ", "))
	}
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("%s: node agent: panic: %v", req.Op, p)
		}
	}()
	return h(ctx, req.Request)
}

// Idle is `kdiag agent idle`, the agent pod's main process: it does
// nothing until ctx is cancelled (kdiag's main cancels it on SIGTERM, which
// the kubelet sends when the pod is deleted), then returns nil.
func Idle(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
