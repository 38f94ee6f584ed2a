package playbook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/transcript"
)

// RunRequest is one run for an Executor: the runbook, its raw params
// (rendered from the alert), the labels to record and the mutation policy.
type RunRequest struct {
	// ID is the run's id.
	ID string
	// Runbook is the loader module name of the runbook.
	Runbook string
	// Params are the raw param values, as -p gives them.
	Params map[string]any
	// Labels are recorded in the transcript header.
	Labels map[string]string
	// Policy decides what write built-ins may do.
	Policy Policy
	// Timeout bounds the run; zero means no bound.
	Timeout time.Duration
	// TranscriptPath is where the transcript must be once the run ends.
	TranscriptPath string
	// Loader resolves Runbook and its loads: the server's repositories as
	// they were when the run started (an update between runs changes
	// it, never during one). Nil means the executor's own.
	Loader *engine.Loader
	// Bundle, for an executor that takes bundles (the Job executor) and a
	// runbook not of the built-in library, holds the exact files the run
	// loads, made with Loader when the run started.
	Bundle *bundle.Bundle
	// Key is the same for one alert episode (route, fingerprint, the
	// alert's startsAt) on every replica of the server: an executor that
	// names what it creates by it lets the API server refuse a second run.
	Key string

	// fan and set, for a fan-out route's run, are the route's fanout and
	// what the alert named; the server runs one request per pod.
	fan *fanout
	set *SetTarget
}

// DuplicateError is returned by an Executor's Start when another replica
// of the server already started the run of the same Key.
type DuplicateError struct {
	// What names the object that exists, e.g. "job kdiag/kdiag-3f2a...".
	What string
}

func (e *DuplicateError) Error() string {
	return "another replica of the server runs this alert: " + e.What + " exists"
}

// Outcome is how a run ended.
type Outcome struct {
	// Status is ok, failed or cancelled.
	Status string
	// Message says why a run failed or was cancelled.
	Message string
	// Damaged, when set, says why the run's transcript cannot be trusted
	// (a protocol error while streaming it, a corrupt file).
	Damaged string
}

// RunHandle is a started run.
type RunHandle interface {
	// Wait blocks until the run ends. When it returns, the transcript of a
	// run that started is complete at the request's TranscriptPath.
	Wait() Outcome
}

// Executor runs runbooks for the server: in-process (Local) or in a
// Kubernetes Job (package playbook/job). Cancelling the context given to
// Start stops the run; its transcript then ends with status cancelled.
type Executor interface {
	// Name names the executor in run metadata ("local", "job").
	Name() string
	// Start starts the run and returns without waiting for it.
	Start(ctx context.Context, req RunRequest) (RunHandle, error)
}

// bundleTaker is implemented by executors that run the runbook
// somewhere the server's files are not (the Job executor): the server
// gives each run of a runbook not of the built-in library a Bundle of its
// files, and checks at start-up that each route's fits.
type bundleTaker interface {
	TakesBundles() bool
}

// setClaimer is implemented by executors that keep replicas of the
// server from running one alert episode twice (the Job executor): the
// server claims a fan-out run's episode (its Key; Timeout bounds the
// whole set) before it runs any pod, and a DuplicateError ends the set
// as a duplicate. Each pod's run is claimed again by Start, under its
// own key.
type setClaimer interface {
	Claim(ctx context.Context, req RunRequest) (release func(ended bool), err error)
}

// Local is the in-process Executor: it runs the runbook with engine.Run
// and the server's built-ins.
type Local struct {
	// Specs are the built-ins (builtins.All with the server's kube config).
	Specs []*engine.Spec
	// Loader resolves runbooks and their modules.
	Loader *engine.Loader
	// Target is recorded in the transcript header.
	Target transcript.Target
	// Version is kdiag's version, recorded in the header.
	Version string
	// MaxSteps bounds the Starlark computation steps; 0 means no bound.
	MaxSteps uint64
	// MaxHeapBytes stops runs when the server's heap grows past it (all
	// runs in flight: they share the process); 0 means no bound.
	MaxHeapBytes uint64
	// Preflight, if set, checks before a run that the server may do what
	// the runbook's built-ins need (builtins.Preflight).
	Preflight func(ctx context.Context, rb *engine.Runbook, params map[string]any, mayWrite func(builtin string) bool) error
}

// Name implements Executor.
func (l *Local) Name() string { return "local" }

// Start implements Executor.
func (l *Local) Start(ctx context.Context, req RunRequest) (RunHandle, error) {
	h := &localHandle{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.out = l.run(ctx, req)
	}()
	return h, nil
}

// errNotStarted ends a run whose context ended before it started.
var errNotStarted = errors.New("cancelled before the run started")

// preflightError is a run refused by the preflight.
type preflightError struct{ err error }

func (e *preflightError) Error() string { return "preflight: " + e.err.Error() }
func (e *preflightError) Unwrap() error { return e.err }

type localHandle struct {
	done chan struct{}
	out  Outcome
}

func (h *localHandle) Wait() Outcome {
	<-h.done
	return h.out
}

func (l *Local) run(ctx context.Context, req RunRequest) Outcome {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, req.Timeout, fmt.Errorf("the run took longer than its route's timeout %s", req.Timeout))
		defer cancel()
	}
	loader := l.Loader
	if req.Loader != nil {
		loader = req.Loader
	}
	opts := engine.Options{
		Specs: l.Specs, Loader: loader, Params: req.Params,
		DryRun: req.Policy.DryRun(), Approver: req.Policy.Approver(),
		RefusalHint: "the route's mutation policy is never; set mutations: allow with allow_builtins to permit it",
		Labels:      req.Labels, Version: l.Version, Target: l.Target, MaxSteps: l.MaxSteps, MaxHeapBytes: l.MaxHeapBytes,
	}
	res, _, err := engine.Launch{
		Module: req.Runbook, Options: opts,
		Preflight: func(ctx context.Context, rb *engine.Runbook, bound map[string]any) error {
			if l.Preflight != nil {
				if err := l.Preflight(ctx, rb, bound, req.Policy.MayWrite); err != nil {
					return &preflightError{err}
				}
			}
			if ctx.Err() != nil {
				return errNotStarted
			}
			return nil
		},
		TranscriptPath: func(*engine.Runbook) string { return req.TranscriptPath },
	}.Start(ctx)
	switch {
	case errors.Is(err, errNotStarted):
		return Outcome{Status: StatusCancelled, Message: "run cancelled before it started: " + context.Cause(ctx).Error()}
	case err != nil:
		return Outcome{Status: StatusFailed, Message: err.Error()}
	}
	out := Outcome{Status: StatusFailed}
	if res.Footer != nil {
		out.Status = res.Footer.Status
	}
	if res.Err != nil {
		out.Message = res.Err.Error()
		var ce *engine.CancelledError
		if errors.As(res.Err, &ce) {
			out.Status = StatusCancelled
		}
	}
	return out
}
