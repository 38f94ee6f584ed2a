package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// FileOptions are the Starlark dialect options of runbooks: sets, while
// loops, recursion and top-level if/for are allowed; globals cannot be
// reassigned.
var FileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	Recursion:       true,
}

// Approver decides whether a mutation may run. It returns nil to approve,
// or an error saying why the mutation is refused.
type Approver interface {
	Approve(ctx context.Context, a Approval) error
}

// Approval is what an Approver is asked about.
type Approval struct {
	Builtin string
	Pos     string
	Args    Args
	// Target names the object the change is made to, when known (undo).
	Target string
	// Plan is the built-in's dry-run result (the planned change), if it
	// can plan.
	Plan any
}

// DefaultMaxSteps is the bound on a run's Starlark computation steps
// that kdiag run (--max-steps) and the playbook server use.
const DefaultMaxSteps = 10_000_000

// Options configure a run or a replay.
type Options struct {
	// Specs are the built-ins available to the runbook.
	Specs []*Spec
	// Loader reads the runbook and its modules.
	Loader *Loader
	// Params are raw parameter values: strings from -p or typed values
	// from a params file.
	Params map[string]any
	// DryRun refuses or plans every write built-in.
	DryRun DryRun
	// Approver approves mutations; nil refuses every mutation.
	Approver Approver
	// RefusalHint ends the message of a mutation refused for want of an
	// Approver; the default suits the command line ("re-run with --yes").
	RefusalHint string
	// Writer, if set, receives every event as it happens.
	Writer *transcript.Writer
	// Observer, if set, is called with every event after it is recorded.
	Observer func(*transcript.Event)
	// MaxSteps bounds the Starlark computation steps; 0 means no bound
	// (the command line and the server use DefaultMaxSteps).
	MaxSteps uint64
	// MaxHeapBytes, if set, stops the runbook (status failed, with a
	// message saying why, the transcript complete) when the process's
	// heap grows past it: a watchdog against runaway allocations.
	MaxHeapBytes uint64
	// Replay, if set, answers every call from this transcript instead of
	// running the built-ins.
	Replay *transcript.Transcript
	// Target describes the cluster the run is aimed at.
	Target transcript.Target
	// Version is kdiag's version, recorded in the header.
	Version string
	// Labels are recorded in the header (e.g. the alert that started a run).
	Labels map[string]string
	// Progress, if set, is called before each live built-in call starts.
	Progress func(builtin, pos string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result is the outcome of a run: its runbook, every event and the error
// that ended it, if any.
type Result struct {
	Runbook *Runbook
	Header  *transcript.Event
	Events  []*transcript.Event
	Footer  *transcript.Event
	// Err is nil, a *UsageError, *DivergenceError, *CancelledError, or
	// the runbook's run-time error.
	Err error
	// Backtrace is the Starlark backtrace of a run-time error.
	Backtrace string
}

// Transcript returns the result as a parsed transcript.
func (r *Result) Transcript() *transcript.Transcript {
	return &transcript.Transcript{Header: r.Header, Events: r.Events, Footer: r.Footer}
}

// Run loads the runbook at path (Load), binds its params and runs its
// main(p) (Program.Run), recording every built-in call. Errors that stop
// the run before it starts (bad syntax, bad params) are returned as
// *UsageError with no events.
func Run(ctx context.Context, runbookPath string, opts Options) *Result {
	p, err := Load(runbookPath, opts)
	if err != nil {
		res := &Result{Err: err}
		if p != nil {
			res.Runbook = p.Runbook
		}
		return res
	}
	return p.Run(ctx, opts)
}

// LoadModule executes a Starlark file the way a runbook's modules are
// loaded (built-ins that touch anything are refused), with extra
// predeclared names, and returns its globals and the thread to call its
// functions with. Runbook tests (*_test.star) use it.
func LoadModule(path string, opts Options, extra starlark.StringDict) (starlark.StringDict, *starlark.Thread, error) {
	r := newRun(context.Background(), opts)
	for k, v := range extra {
		r.predecl[k] = v
	}
	name, err := r.opts.Loader.Resolve("", path)
	if err != nil {
		return nil, nil, err
	}
	g, err := newModules(r.opts.Loader, r.thread, r.predecl).exec(name)
	return g, r.thread, err
}

type run struct {
	opts      Options
	ctx       context.Context
	thread    *starlark.Thread
	specs     map[string]*Spec
	own       starlark.StringDict // the run's built-ins
	predecl   starlark.StringDict // what files see: dispatching(own)
	loading   bool
	seq       int
	start     time.Time
	clock     float64
	events    []*transcript.Event
	steps     []string
	replay    *replayer
	cleanups  []cleanup
	calls     int
	writerErr error

	cleanupResults []transcript.Cleanup
}

func newRun(ctx context.Context, opts Options) *run {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Loader == nil {
		opts.Loader = &Loader{}
	}
	r := &run{
		opts:    opts,
		ctx:     ctx,
		specs:   map[string]*Spec{},
		loading: true,
		start:   opts.Now(),
	}
	if opts.Replay != nil {
		r.replay = newReplayer(opts.Replay)
		if opts.Replay.Header.Start != nil {
			r.start = *opts.Replay.Header.Start
		}
		r.opts.DryRun = DryRun(strings.TrimPrefix(opts.Replay.Header.Mode, "dry-run-"))
		if opts.Replay.Header.Mode == "live" {
			r.opts.DryRun = DryRunNone
		}
	}
	r.thread = &starlark.Thread{Name: "runbook", Print: func(t *starlark.Thread, msg string) {
		r.emit(&transcript.Event{Type: transcript.TypePrint, Pos: callerPos(t, 0), Message: msg}, false)
	}}
	if opts.MaxSteps > 0 {
		r.thread.SetMaxExecutionSteps(opts.MaxSteps)
	}
	r.thread.SetLocal(runLocal, r)
	r.own = r.predeclared()
	r.predecl = dispatching(r.own)
	return r
}

func (r *run) header(p *Program, params map[string]any) {
	rb := p.Runbook
	mode := "live"
	if r.opts.DryRun != DryRunNone {
		mode = "dry-run-" + string(r.opts.DryRun)
	}
	start := r.start.UTC()
	target := r.opts.Target
	h := &transcript.Event{
		Type: transcript.TypeHeader, Version: transcript.Version, Kdiag: r.opts.Version,
		Runbook: rb.Path, Name: rb.Name, Files: p.Files, Loads: p.Loads, Params: params,
		Target: &target, Start: &start, Mode: mode, Labels: r.opts.Labels,
	}
	if dl, ok := r.ctx.Deadline(); ok {
		h.Deadline = time.Until(dl).Round(time.Second).String()
	}
	if rp := r.opts.Replay; rp != nil {
		rh := *rp.Header
		rh.Files, rh.Loads = h.Files, h.Loads
		h = &rh
	}
	if len(h.Loads) == 0 {
		h.Loads = nil
	}
	r.events = append(r.events, h)
	r.write(h, true)
}

func (r *run) footer(err error, res *Result) {
	f := &transcript.Event{Type: transcript.TypeFooter, Status: transcript.StatusOK, Calls: r.calls}
	var div *DivergenceError
	var usage *UsageError
	switch {
	case err == nil:
	case errors.As(err, &div):
		f.Status, res.Err = transcript.StatusFailed, div
	case errors.As(err, &usage):
		f.Status, res.Err = transcript.StatusFailed, usage
	case r.ctx.Err() != nil && !errors.Is(r.ctx.Err(), context.DeadlineExceeded) || r.replayCancelled(err):
		f.Status = transcript.StatusCancelled
		res.Err = &CancelledError{Reason: cancelReason(r.ctx)}
		if r.replay != nil && r.ctx.Err() == nil {
			res.Err = &CancelledError{Reason: "the recorded run was cancelled here"}
		}
	default:
		f.Status, res.Err = transcript.StatusFailed, err
		if r.ctx.Err() != nil {
			res.Err = fmt.Errorf("run timed out: %w", err)
		}
	}
	if res.Err != nil {
		f.Message = res.Err.Error()
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			res.Backtrace = ee.Backtrace()
		}
	}
	res.Err, res.Backtrace = redactError(res.Err), RedactString(res.Backtrace)
	f.Cleanups = r.cleanupResults
	f.DurationMS = r.elapsed()
	if r.replay != nil && r.replay.t.Footer != nil && f.Status == r.replay.t.Footer.Status {
		f.DurationMS = r.replay.t.Footer.DurationMS
	}
	r.emit(f, true)
}

func (r *run) replayCancelled(err error) bool {
	var ce *CancelledError
	return r.replay != nil && errors.As(err, &ce)
}

// emit numbers, timestamps, records and publishes an event.
func (r *run) emit(e *transcript.Event, sync bool) {
	r.seq++
	e.Seq = r.seq
	if e.AtMS == 0 {
		e.AtMS = r.elapsed()
	}
	r.events = append(r.events, e)
	r.write(e, sync)
}

func (r *run) write(e *transcript.Event, sync bool) {
	redactEvent(e)
	if r.opts.Writer != nil && r.writerErr == nil {
		r.writerErr = r.opts.Writer.Append(e, sync)
	}
	if r.opts.Observer != nil {
		r.opts.Observer(e)
	}
}

// elapsed is the run's clock in milliseconds: wall time when live, the
// recorded time of the last replayed call in a replay.
func (r *run) elapsed() float64 {
	if r.replay != nil {
		return r.clock
	}
	return roundMS(r.opts.Now().Sub(r.start))
}

func roundMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func (r *run) stepName() string { return strings.Join(r.steps, " / ") }

func paramsValue(bound map[string]any) (starlark.Value, error) {
	b, err := json.Marshal(bound)
	if err != nil {
		return nil, err
	}
	v, err := FromJSON(b)
	if err != nil {
		return nil, err
	}
	d := starlark.StringDict{}
	for _, it := range v.(*Record).Items() {
		d[string(it[0].(starlark.String))] = it[1]
	}
	return starlarkstruct.FromStringDict(starlark.String("params"), d), nil
}

func cancelReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c.Error()
	}
	if ctx.Err() != nil {
		return ctx.Err().Error()
	}
	return "cancelled"
}

// callerPos returns the position of the nearest Starlark frame at or
// above depth, skipping built-ins such as step() that call other built-ins.
func callerPos(t *starlark.Thread, depth int) string {
	for d := depth; d < t.CallStackDepth(); d++ {
		fr := t.CallFrame(d)
		if fr.Pos.Filename() != "<builtin>" {
			return fr.Pos.Filename() + ":" + strconv.Itoa(int(fr.Pos.Line)) + ":" + strconv.Itoa(int(fr.Pos.Col))
		}
	}
	return ""
}

func withBacktrace(err error) error {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		return errors.New(ee.Backtrace())
	}
	return err
}

func copyDict(d starlark.StringDict) starlark.StringDict {
	out := make(starlark.StringDict, len(d)+1)
	for k, v := range d {
		out[k] = v
	}
	return out
}

func asEval(err error, target **starlark.EvalError) bool { return errors.As(err, target) }
