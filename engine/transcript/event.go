// Package transcript defines kdiag's transcript format: JSON Lines with a
// header, one event per built-in call, step, finding and print, and a
// footer; its writer and strict reader; and the frames that carry a
// transcript through a log line by line (kdiag run --stream-transcript).
package transcript

import (
	"encoding/json"
	"time"
)

// Version is the transcript format version this build writes and reads.
const Version = 1

// The event types.
const (
	TypeHeader    = "header"
	TypeCall      = "call"
	TypeStepStart = "step_start"
	TypeStepEnd   = "step_end"
	TypeFinding   = "finding"
	TypePrint     = "print"
	TypeVerdict   = "verdict"
	TypeFooter    = "footer"
)

// The run statuses a footer may carry.
const (
	StatusOK        = "ok"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// File is one loaded runbook or module, with its source so that a
// transcript replays without the original files.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Source string `json:"source"`
	// Repo, URL and Commit say where a file of a pinned repository came
	// from (kdiag repo add); empty for the built-in library and local files.
	Repo   string `json:"repo,omitempty"`
	URL    string `json:"url,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// Target is the cluster context a run was aimed at.
type Target struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Node       string `json:"node,omitempty"`
}

// CallError is a recorded built-in error.
type CallError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Cleanup is the outcome of one run-level cleanup.
type Cleanup struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
}

// Event is one line of a transcript. Which fields are set depends on Type.
type Event struct {
	Type string `json:"type"`
	Seq  int    `json:"seq,omitempty"`
	// AtMS is the time since the start of the run, in milliseconds.
	AtMS float64 `json:"at_ms,omitempty"`
	Step string  `json:"step,omitempty"`
	Pos  string  `json:"pos,omitempty"`

	// header
	Version int               `json:"version,omitempty"`
	Kdiag   string            `json:"kdiag,omitempty"`
	Runbook string            `json:"runbook,omitempty"`
	Name    string            `json:"name,omitempty"`
	Files   []File            `json:"files,omitempty"`
	Params  map[string]any    `json:"params,omitempty"`
	Target  *Target           `json:"target,omitempty"`
	Start   *time.Time        `json:"start,omitempty"`
	Mode    string            `json:"mode,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Deadline is how long the run had when it started (kdiag run
	// --timeout, a route's timeout), e.g. "10m0s"; empty for no bound.
	Deadline string `json:"deadline,omitempty"`
	// Loads maps "from|module" to the file each load() resolved to.
	Loads map[string]string `json:"loads,omitempty"`

	// call
	Builtin    string          `json:"builtin,omitempty"`
	Effect     string          `json:"effect,omitempty"`
	Args       json.RawMessage `json:"args,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      *CallError      `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms,omitempty"`
	Mutation   json.RawMessage `json:"mutation,omitempty"`
	DryRun     string          `json:"dry_run,omitempty"`

	// step_end, finding, print, verdict, footer
	Status   string          `json:"status,omitempty"`
	Severity string          `json:"severity,omitempty"`
	Summary  string          `json:"summary,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Message  string          `json:"message,omitempty"`
	Calls    int             `json:"calls,omitempty"`
	Cleanups []Cleanup       `json:"cleanups,omitempty"`
}
