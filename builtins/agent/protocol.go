package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/engine"
)

// ProtocolVersion is the version of the request and response envelopes
// this build speaks. kdiag and its agent must speak the same one: an agent
// of another version answers with an error naming both.
const ProtocolVersion = 1

// Request is the envelope kdiag writes to `kdiag agent call`'s standard
// input: one JSON value, e.g.
//
//	{"v":1,"op":"http_probe","timeout_ms":9950,"request":{"url":"http://127.0.0.1:3000/readyz",...}}
type Request struct {
	// V is the protocol version.
	V int `json:"v"`
	// Op is the built-in's name, one of Builtins (find_pid, a node
	// operation of package node's table, or strace_sample).
	Op string `json:"op"`
	// TimeoutMS is what was left of the call's deadline when it was sent;
	// 0 means none. The agent stops the request when it expires, and also
	// when its standard input closes (kdiag went away).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Request is the operation's request struct (its node.Row's Req:
	// node.HTTPProbeRequest, cri.FindPIDRequest...).
	Request json.RawMessage `json:"request"`
}

// Response is the envelope `kdiag agent call` writes to its standard
// output: a result, or an error that keeps its kind.
//
//	{"v":1,"result":{"ok":false,"status":500,...}}
//	{"v":1,"error":{"kind":"gone","message":"enter_ns: process 4242 does not exist"}}
type Response struct {
	// V is the protocol version.
	V int `json:"v"`
	// Result is the built-in's result struct.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is set when the request failed.
	Error *WireError `json:"error,omitempty"`
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

// VersionError reports an agent and a kdiag that speak different protocol
// versions.
type VersionError struct {
	// Agent and Kdiag are the versions of each side.
	Agent, Kdiag int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("node agent speaks protocol v%d, this kdiag speaks v%d: use an agent image of the same kdiag version (--agent-image)", e.Agent, e.Kdiag)
}
