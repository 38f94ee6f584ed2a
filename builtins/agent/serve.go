package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
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

// Session is the agent's side of a session (`kdiag agent session`): it
// writes a Hello, then reads Request frames from in, serves each call
// concurrently on this node with the operation's Linux implementation and
// writes its Response frame to out when it finishes, carrying the call's
// ID. A cancel frame cancels its call, which is then answered with the
// cancellation. Failures of a request, including a protocol version other
// than ProtocolVersion, are answered as a Response with an error.
//
// When in ends or fails (kdiag closed the stream, or went away) every
// call in flight is cancelled, so that a trace detaches and a command is
// killed, and Session returns once they all stopped. A frame over the cap
// (maxFrame) is answered with a session error (ID 0) and ends the session,
// as does a failure to write out.
func Session(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	w := &frameWriter{out: out}
	s := &agentSession{ctx: ctx, w: w, calls: map[uint64]context.CancelFunc{}, hs: handlers(), max: maxFrame()}
	defer func() {
		cancel()
		s.wg.Wait()
	}()
	if err := w.write(Response{V: ProtocolVersion, Hello: &Hello{PID: os.Getpid()}}); err != nil {
		return err
	}
	rd := bufio.NewReaderSize(in, 64<<10)
	for ctx.Err() == nil {
		line, err := readFrame(rd, s.max)
		var big *frameTooLarge
		switch {
		case errors.As(err, &big):
			err = fmt.Errorf("node agent: refused %v: session closed", big)
			_ = w.write(Response{V: ProtocolVersion, Error: wireError(err)})
			return err
		case err != nil:
			return nil
		}
		s.handle(line)
	}
	return w.err
}

// agentSession is the state of Session.
type agentSession struct {
	ctx context.Context
	w   *frameWriter
	hs  map[string]handler
	max int // the frame cap, read when the session starts
	wg  sync.WaitGroup

	mu    sync.Mutex
	calls map[uint64]context.CancelFunc // calls in flight by ID
}

// handle acts on one frame: a cancellation, or a call served in its own
// goroutine.
func (s *agentSession) handle(line []byte) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		_ = s.w.write(Response{V: ProtocolVersion, Error: wireError(fmt.Errorf("node agent: cannot decode the request envelope: %v", err))})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Cancel {
		if c := s.calls[req.ID]; c != nil {
			c()
		}
		return
	}
	if _, dup := s.calls[req.ID]; dup || req.ID == 0 {
		_ = s.w.write(Response{V: ProtocolVersion, ID: req.ID, Error: wireError(fmt.Errorf("%s: node agent: call id %d is 0 or already in flight", req.Op, req.ID))})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.calls[req.ID] = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		resp := s.answer(ctx, &req)
		s.mu.Lock()
		delete(s.calls, req.ID)
		s.mu.Unlock()
		cancel()
		if err := s.w.write(resp); err != nil {
			// The stream is broken: nobody can hear the other calls.
			s.stop()
		}
	}()
}

// stop cancels every call in flight.
func (s *agentSession) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		c()
	}
}

// answer serves one call and encodes its answer, refusing a result over
// the frame cap.
func (s *agentSession) answer(ctx context.Context, req *Request) Response {
	resp := Response{V: ProtocolVersion, ID: req.ID}
	res, err := serve(ctx, s.hs, req)
	if err == nil {
		resp.Result, err = json.Marshal(res)
		if err != nil {
			err = fmt.Errorf("%s: node agent: cannot encode the result: %v", req.Op, err)
		} else if n := len(resp.Result); n > s.max-1024 {
			resp.Result = nil
			err = fmt.Errorf("%s: node agent: the result is %d bytes of JSON, over the %d-byte frame cap (what a transcript line holds): ask for less", req.Op, n, s.max-1024)
		}
	}
	if err != nil {
		resp.Error = wireError(err)
	}
	return resp
}

// serve checks the envelope and runs the op, turning a panic into an
// infrastructure error.
func serve(ctx context.Context, hs map[string]handler, req *Request) (res any, err error) {
	if req.V != ProtocolVersion {
		return nil, &VersionError{Agent: ProtocolVersion, Kdiag: req.V}
	}
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
