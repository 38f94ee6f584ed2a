package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// errBroken marks a call whose session stream broke while the call was in
// flight: whether the agent served it is unknown.
var errBroken = errors.New("the session stream broke")

// cancelWait bounds how long a cancelled call waits for the agent to
// confirm that it stopped (a trace detached, a command was killed).
var cancelWait = 5 * time.Second

// closeWait bounds how long closing a session waits for the agent to
// finish before the transport is stopped.
var closeWait = 10 * time.Second

// session is kdiag's side of one agent session: many calls over one
// stream (one exec of `kdiag agent session`), each a Request frame with an
// ID, answered by a Response frame with the same ID, in any order.
type session struct {
	where string // "node agent NS/NAME on node N", for errors
	w     *frameWriter
	in    io.Closer // the agent's standard input
	// stop ends the transport at once; ended is closed when it is over.
	stop  func()
	ended <-chan struct{}
	hello chan Hello // receives the agent's hello
	max   int        // the frame cap, read when the session starts

	mu      sync.Mutex
	pending map[uint64]chan *Response
	next    uint64
	done    chan struct{} // closed when the stream is over
	err     error         // why, set before done is closed
}

// newSession starts a session over a stream: frames are written to in
// and read from out. stop ends the transport; ended is closed once it is
// over (nil: at once).
func newSession(where string, in io.WriteCloser, out io.Reader, stop func(), ended <-chan struct{}) *session {
	if ended == nil {
		c := make(chan struct{})
		close(c)
		ended = c
	}
	s := &session{
		where: where, w: &frameWriter{out: in}, in: in, stop: stop, ended: ended,
		hello: make(chan Hello, 1), max: maxFrame(), pending: map[uint64]chan *Response{}, done: make(chan struct{}),
	}
	go s.read(out)
	return s
}

// read dispatches the agent's frames to their calls until the stream
// ends, then fails the calls still waiting.
func (s *session) read(out io.Reader) {
	rd := bufio.NewReaderSize(out, 64<<10)
	first := true
	for {
		line, err := readFrame(rd, s.max)
		if err != nil {
			var big *frameTooLarge
			if errors.As(err, &big) {
				err = fmt.Errorf("answered %v: refused", big)
				s.stop()
			} else if err == io.EOF {
				err = errors.New("the stream ended")
			}
			s.fail(err)
			return
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			s.fail(fmt.Errorf("answered a frame that is not a response (%v): %q", err, clip(string(line))))
			s.stop()
			return
		}
		if first {
			first = false
			if resp.V != ProtocolVersion {
				s.fail(&VersionError{Agent: resp.V, Kdiag: ProtocolVersion})
				s.stop()
				return
			}
			if resp.Hello == nil {
				s.fail(fmt.Errorf("did not open the session with a hello: %q", clip(string(line))))
				s.stop()
				return
			}
			s.hello <- *resp.Hello
			continue
		}
		if resp.ID == 0 {
			msg := "an error without a call"
			if resp.Error != nil {
				msg = resp.Error.Message
			}
			s.fail(errors.New(msg))
			s.stop()
			return
		}
		s.mu.Lock()
		ch := s.pending[resp.ID]
		delete(s.pending, resp.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- &resp
		}
	}
}

// fail ends the session with err (the first reason wins).
func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
}

// broken reports whether the session is over.
func (s *session) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitHello waits for the agent's hello: the session is up.
func (s *session) waitHello(ctx context.Context, op string) (Hello, error) {
	select {
	case h := <-s.hello:
		return h, nil
	case <-s.done:
		return Hello{}, s.startError(op)
	case <-ctx.Done():
		// Nothing was sent: no need to wait for the agent to end cleanly
		// (and its exec stream may hang with the API server).
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.close(cctx)
		cancel()
		return Hello{}, fmt.Errorf("%s: %s: waiting for the session: %w", op, s.where, ctx.Err())
	}
}

// startError is the error of a session that ended before it opened: no
// request was sent.
func (s *session) startError(op string) error {
	var verr *VersionError
	if errors.As(s.err, &verr) {
		return fmt.Errorf("%s: %s: %w", op, s.where, s.err)
	}
	return fmt.Errorf("%s: %s: starting the session: %w", op, s.where, s.err)
}

// call sends req for op and decodes the result into res. When ctx ends
// first, the agent is told to cancel the call and the call returns once
// the agent confirmed (or after cancelWait). When the stream breaks, the
// call fails with errBroken.
func (s *session) call(ctx context.Context, op string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: node agent: encode the request: %v", op, err)
	}
	ch := make(chan *Response, 1)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return s.brokenError(op)
	}
	s.next++
	id := s.next
	s.pending[id] = ch
	s.mu.Unlock()
	defer s.forget(id)

	env := Request{V: ProtocolVersion, ID: id, Op: op, Request: body}
	if d, ok := ctx.Deadline(); ok {
		env.TimeoutMS = max(time.Until(d).Milliseconds(), 1)
	}
	line, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("%s: node agent: encode the request: %v", op, err)
	}
	if len(line) > s.max {
		return engine.Errorf(engine.KindInvalid, "%s: the request is %d bytes of JSON, over the %d-byte frame cap of the node agent", op, len(line), s.max)
	}
	if err := s.send(ctx, line); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %s: %w", op, s.where, ctx.Err())
		}
		return s.brokenError(op)
	}
	select {
	case resp := <-ch:
		return decodeResponse(op, s.where, resp, res)
	case <-s.done:
		return s.brokenError(op)
	case <-ctx.Done():
	}
	cctx, cancel := context.WithTimeout(context.Background(), cancelWait)
	defer cancel()
	cline, _ := json.Marshal(Request{V: ProtocolVersion, ID: id, Cancel: true})
	if s.send(cctx, cline) == nil {
		select {
		case <-ch:
		case <-s.done:
		case <-cctx.Done():
		}
	}
	return fmt.Errorf("%s: %s: %w", op, s.where, ctx.Err())
}

// send writes one frame, waiting for the stream to take it until ctx
// ends: a stream that takes no frame for that long is stalled, and the
// session is ended (its calls fail and later calls open a new one).
func (s *session) send(ctx context.Context, line []byte) error {
	werr := make(chan error, 1)
	go func() { werr <- s.w.writeLine(line) }()
	select {
	case err := <-werr:
		if err != nil {
			// The stream ended: the reader is about to say why.
			select {
			case <-s.done:
			case <-time.After(time.Second):
				s.fail(fmt.Errorf("cannot write to the session: %v", err))
			}
		}
		return err
	case <-s.done:
		return s.err
	case <-ctx.Done():
		s.fail(errors.New("the stream took no frame until a call ended (stalled)"))
		s.stop()
		return ctx.Err()
	}
}

// forget drops call id's waiter (a late answer is then ignored).
func (s *session) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// brokenError is the error of a call in flight when the stream broke.
func (s *session) brokenError(op string) error {
	return &brokenError{op: op, where: s.where, err: s.err}
}

// brokenError is a call's error when its session broke.
type brokenError struct {
	op, where string
	err       error
}

func (e *brokenError) Error() string {
	return fmt.Sprintf("%s: %s: the session broke during the call: %v", e.op, e.where, e.err)
}

// Unwrap returns errBroken and the reason (errAgentGone when the pod went
// away).
func (e *brokenError) Unwrap() []error { return []error{errBroken, e.err} }

// close ends the session: the agent's standard input is closed, so it
// cancels what is in flight and exits; the transport is then waited for
// (until ctx ends or closeWait passes, then stopped).
func (s *session) close(ctx context.Context) {
	_ = s.in.Close()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-s.ended:
	case <-ctx.Done():
	case <-t.C:
	}
	s.stop()
	<-s.ended
	s.fail(errors.New("the session was closed"))
}
