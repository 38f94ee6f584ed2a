package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// ProtocolVersion is the version of the session frames this build speaks.
// kdiag and its agent must speak the same one: an agent of another
// version answers with an error naming both. Version 1 was one exec of
// `kdiag agent call` per request; version 2 is a session, many calls over
// one exec of `kdiag agent session`.
const ProtocolVersion = 2

// maxFrame is the size cap of one frame, either way: a call's result must
// fit in one transcript line (transcript.MaxLineBytes), so a larger one
// could not be recorded anyway. A frame over it is refused by its reader
// (which ends the session) and never written by the agent, which answers
// an error instead.
func maxFrame() int { return transcript.MaxLineBytes }

// Request is a frame kdiag writes to the session's standard input, one
// JSON value per line: a call, or the cancellation of a call in flight.
//
//	{"v":2,"id":7,"op":"http_probe","timeout_ms":9950,"request":{"url":"http://127.0.0.1:3000/readyz",...}}
//	{"v":2,"id":7,"cancel":true}
type Request struct {
	// V is the protocol version.
	V int `json:"v"`
	// ID numbers the call within its session; its Response carries it.
	ID uint64 `json:"id"`
	// Op is the built-in's name, one of Builtins (find_pid, a node
	// operation of package node's table, or strace_sample).
	Op string `json:"op,omitempty"`
	// Cancel asks the agent to cancel call ID; the agent answers the
	// call (with a cancellation error) once it stopped.
	Cancel bool `json:"cancel,omitempty"`
	// TimeoutMS is what was left of the call's deadline when it was sent;
	// 0 means none. The agent stops the call when it expires, when it is
	// cancelled, and when the session ends (kdiag went away).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Request is the operation's request struct (its node.Row's Req:
	// node.HTTPProbeRequest, cri.FindPIDRequest...).
	Request json.RawMessage `json:"request,omitempty"`
}

// Response is a frame the agent writes to the session's standard output,
// one JSON value per line: first a hello, then one answer per call, in the
// order they finish: a result, or an error that keeps its kind.
//
//	{"v":2,"id":0,"hello":{"pid":31337}}
//	{"v":2,"id":7,"result":{"ok":false,"status":500,...}}
//	{"v":2,"id":8,"error":{"kind":"gone","message":"enter_ns: process 4242 does not exist"}}
//
// An error with id 0 is about the session itself (a frame the agent could
// not read); the agent ends the session after it.
type Response struct {
	// V is the protocol version.
	V int `json:"v"`
	// ID is the call's ID, 0 for the hello and for session errors.
	ID uint64 `json:"id"`
	// Hello opens the session.
	Hello *Hello `json:"hello,omitempty"`
	// Result is the built-in's result struct.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is set when the request failed.
	Error *WireError `json:"error,omitempty"`
}

// Hello is the agent's first frame of a session.
type Hello struct {
	// PID is the session process's PID (in the node's PID namespace,
	// the agent pod sharing the host's).
	PID int `json:"pid"`
}

// WireError is an error on the wire. Kind is an engine.Kind for an
// expected failure (engine.Error), empty for an infrastructure failure.
type WireError struct {
	Kind    engine.Kind `json:"kind,omitempty"`
	Message string      `json:"message"`
}

// wireError encodes err.
func wireError(err error) *WireError {
	var e *engine.Error
	if errors.As(err, &e) {
		return &WireError{Kind: e.Kind, Message: e.Message}
	}
	return &WireError{Message: err.Error()}
}

// err decodes a wire error: an *engine.Error with its kind, or a plain
// error for an infrastructure failure.
func (w *WireError) err() error {
	if w.Kind != "" {
		return &engine.Error{Kind: w.Kind, Message: w.Message}
	}
	return errors.New(w.Message)
}

// decodeResponse decodes the agent's answer to op into res: its error with
// its kind, or a version mismatch.
func decodeResponse(op, where string, resp *Response, res any) error {
	if resp.V != ProtocolVersion {
		return fmt.Errorf("%s: %s: %w", op, where, &VersionError{Agent: resp.V, Kdiag: ProtocolVersion})
	}
	if resp.Error != nil {
		return resp.Error.err()
	}
	if err := json.Unmarshal(resp.Result, res); err != nil {
		return fmt.Errorf("%s: %s: cannot decode the result: %v", op, where, err)
	}
	return nil
}

// VersionError reports an agent and a kdiag that speak different protocol
// versions.
type VersionError struct {
	// Agent and Kdiag are the versions of each side.
	Agent, Kdiag int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("node agent speaks protocol v%d, this kdiag speaks v%d: use an agent image of the same kdiag version (--agent-image)", e.Agent, e.Kdiag)
}
