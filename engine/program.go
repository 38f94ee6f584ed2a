package engine

import (
	"context"
	"fmt"

	"github.com/kdiag/kdiag/engine/transcript"
	"go.starlark.net/starlark"
)

// Program is a runbook loaded once: its top level (and its modules')
// executed, its declaration read, its main function and the files it
// read. Describe, BindParams and Run take it from Load, so that one run
// executes a runbook's top level once.
type Program struct {
	// Runbook is the runbook's metadata and params, with the built-ins
	// its files mention.
	Runbook *Runbook
	// Main is the runbook's main(p).
	Main starlark.Callable
	// Files are the files the runbook read, the runbook first, as the
	// transcript's header records them.
	Files []transcript.File
	// Loads maps "FROM|MODULE" to the file each load resolved to.
	Loads map[string]string
}

// Load resolves the runbook at runbookPath with opts.Loader and executes
// its top level with opts.Specs predeclared (a built-in called there is
// refused; print() there records nothing). Errors (bad syntax, no
// main(p)) are *UsageError; with a runbook that declares itself but has
// no main(p), the Program holds its Runbook.
func Load(runbookPath string, opts Options) (*Program, error) {
	opts.Writer, opts.Observer, opts.Progress = nil, nil, nil
	r := newRun(context.Background(), opts)
	m := newModules(r.opts.Loader, r.thread, r.predecl)
	rb, mainFn, err := m.main(runbookPath)
	if rb == nil {
		return nil, err
	}
	rb.Builtins = mentioned(m.files, r.specs)
	p := &Program{Runbook: rb, Main: mainFn, Files: m.files, Loads: m.loads}
	return p, err
}

// runLocal is the thread-local key under which a run's thread holds it.
const runLocal = "kdiag.run"

// dispatching returns own with every built-in replaced by one that calls
// the built-in of that name of the run whose thread calls it. A
// Program's functions keep the built-ins they were loaded with; these
// make them act for the run that calls main(p), not the one that loaded
// the Program.
func dispatching(own starlark.StringDict) starlark.StringDict {
	out := make(starlark.StringDict, len(own))
	for name, v := range own {
		if _, ok := v.(*starlark.Builtin); !ok {
			out[name] = v
			continue
		}
		out[name] = starlark.NewBuiltin(name, func(th *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			r, _ := th.Local(runLocal).(*run)
			if r == nil {
				return nil, fmt.Errorf("%s: called outside a kdiag run", name)
			}
			b, ok := r.own[name].(*starlark.Builtin)
			if !ok {
				return nil, fmt.Errorf("%s: not a built-in of this run (the runbook was loaded with other built-ins)", name)
			}
			return b.CallInternal(th, args, kwargs)
		})
	}
	return out
}

// Run binds the params (opts.Params, or a replayed transcript's) and runs
// the program's main(p), recording every built-in call. Errors that stop
// the run before it starts (bad params) are returned as *UsageError with
// no events.
func (p *Program) Run(ctx context.Context, opts Options) *Result {
	r := newRun(ctx, opts)
	res := &Result{Runbook: p.Runbook}
	if p.Main == nil {
		res.Err = &UsageError{fmt.Errorf("%s: the runbook defines no main(p) function; put the diagnosis in def main(p): and read params as p.NAME", p.Runbook.Path)}
		return res
	}
	params := opts.Params
	if opts.Replay != nil && params == nil {
		params = opts.Replay.Header.Params
	}
	bound, err := BindParams(p.Runbook, params)
	if err != nil {
		res.Err = err
		return res
	}
	r.header(p, bound)
	r.loading = false
	pv, err := paramsValue(bound)
	if err != nil {
		res.Err = err
		return res
	}
	stop := context.AfterFunc(r.ctx, func() { r.thread.Cancel(cancelReason(r.ctx)) })
	stopWatch := func() bool { return false }
	if opts.MaxHeapBytes > 0 {
		stopWatch = watchHeap(r.thread, opts.MaxHeapBytes)
	}
	_, callErr := starlark.Call(r.thread, p.Main, starlark.Tuple{pv}, nil)
	stop()
	stopWatch()
	if callErr == nil && r.replay != nil {
		callErr = r.replay.finish()
	}
	r.runCleanups()
	r.footer(callErr, res)
	res.Header, res.Events = r.events[0], r.events[1:len(r.events)-1]
	res.Footer = r.events[len(r.events)-1]
	if r.writerErr != nil && res.Err == nil {
		res.Err = r.writerErr
	}
	return res
}
