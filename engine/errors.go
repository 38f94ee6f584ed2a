package engine

import (
	"errors"
	"fmt"
)

// Kind classifies an expected failure of a built-in so that runbooks,
// reports and replay can tell it apart from a bug.
type Kind string

// The kinds of expected failure.
const (
	KindNotFound  Kind = "not_found"
	KindForbidden Kind = "forbidden"
	KindTimeout   Kind = "timeout"
	KindGone      Kind = "gone"
	KindRefused   Kind = "refused"
	KindInvalid   Kind = "invalid"
	KindConflict  Kind = "conflict"
	KindCancelled Kind = "cancelled"
	KindFailed    Kind = "failed"
	// KindUnavailable says a component did not answer in time or refused
	// the connection: the API server, a kubelet, the container runtime or
	// a node agent. The message names it; a runbook can go on with what
	// still works (see attempt).
	KindUnavailable Kind = "unavailable"
	// KindIrreversible is returned by a Spec's Undo for a change that has
	// no inverse (an ephemeral container, a restart): undo reports it and
	// goes on.
	KindIrreversible Kind = "irreversible"
)

// Error is a built-in failure of a known kind. It is recorded with its kind
// and replayed as the same error.
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// Cause is the underlying error, when there is one; it is not recorded.
	Cause error `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Cause }

// Wrapf returns an *Error of the given kind that keeps cause for errors.Is
// and errors.As; the message is formatted from format and args only.
func Wrapf(kind Kind, cause error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Errorf returns an *Error of the given kind.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, or KindFailed when it has none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFailed
}

// DivergenceError reports that a replayed runbook made a different call
// than the one recorded at that point of the transcript.
type DivergenceError struct {
	// Seq is the sequence number of the recorded event that did not match.
	Seq int
	// Pos is the runbook position of the call that was made.
	Pos string
	// Expected describes the recorded call.
	Expected string
	// Actual describes the call the runbook made.
	Actual string
}

func (e *DivergenceError) Error() string {
	return fmt.Sprintf("replay diverged at seq %d (%s): expected %s, got %s", e.Seq, e.Pos, e.Expected, e.Actual)
}

// UsageError reports bad input caught before anything ran: an invalid
// runbook, an unknown or missing parameter.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// CancelledError reports a run stopped by a signal or its deadline.
type CancelledError struct{ Reason string }

func (e *CancelledError) Error() string { return "run cancelled: " + e.Reason }
