package engine

import (
	"context"

	"github.com/kdiag/kdiag/engine/transcript"
)

// Launch is the path from a runbook to its recorded run that kdiag run
// and the playbook server share: load the runbook once, fill and bind its
// params, check the run may do what it needs, open the transcript, run.
type Launch struct {
	// Module names the runbook (Loader.ResolveRunbook's result).
	Module string
	// Options are the run's; Params are the raw params, Writer is set by
	// Start when TranscriptPath names a file.
	Options Options
	// Defaults, if set, may fill raw params from the runbook's
	// declaration before they are bound (kdiag run: the namespace of the
	// kubeconfig's context).
	Defaults func(rb *Runbook, raw map[string]any)
	// Preflight, if set, checks the run with its bound params before
	// anything is recorded; its error is returned as it is.
	Preflight func(ctx context.Context, rb *Runbook, params map[string]any) error
	// TranscriptPath, if set, returns the file to write the transcript
	// to; "" writes none.
	TranscriptPath func(rb *Runbook) string
}

// Start loads, prepares and checks the run, then runs it. It returns the
// error that kept the run from starting (loading, binding, Preflight's,
// creating the transcript) with a nil Result; else the run's Result,
// the transcript closed (an error closing it is the Result's Err when the
// run had none) and its path.
func (l Launch) Start(ctx context.Context) (*Result, string, error) {
	prog, err := Load(l.Module, l.Options)
	if err != nil {
		return nil, "", err
	}
	if l.Defaults != nil {
		if l.Options.Params == nil {
			l.Options.Params = map[string]any{}
		}
		l.Defaults(prog.Runbook, l.Options.Params)
	}
	bound, err := BindParams(prog.Runbook, l.Options.Params)
	if err != nil {
		return nil, "", err
	}
	if l.Preflight != nil {
		if err := l.Preflight(ctx, prog.Runbook, bound); err != nil {
			return nil, "", err
		}
	}
	var w *transcript.Writer
	path := ""
	if l.TranscriptPath != nil {
		path = l.TranscriptPath(prog.Runbook)
	}
	if path != "" {
		if w, err = transcript.Create(path); err != nil {
			return nil, "", err
		}
		l.Options.Writer = w
	}
	res := prog.Run(ctx, l.Options)
	if w != nil {
		if err := w.Close(); err != nil && res.Err == nil {
			res.Err = err
		}
	}
	return res, path, nil
}
