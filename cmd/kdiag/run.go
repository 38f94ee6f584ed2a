package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// runOptions are the options of kdiag run.
type runOptions struct {
	g          *globalFlags
	runbook    string
	params     []string
	paramsFile string
	record     string
	noRecord   bool
	dryRun     string
	yes        bool
	output     *outputFlag
	quiet      bool
	timeout    time.Duration
	maxSteps   uint64
	maxHeapMiB uint64
	labelArgs  []string
	allow      []string
	stream     bool
	frameKey   string
	fleet      fleetFlags
	bundleDir  string
	bundleSum  string

	module   string
	loader   *engine.Loader
	raw      map[string]any
	labels   map[string]string
	allowSet bool
	out      io.Writer
	errOut   io.Writer
}

func newRunCmd(g *globalFlags) *cobra.Command {
	o := &runOptions{g: g}
	cmd := &cobra.Command{
		Use:   "run RUNBOOK [-p key=value]... [--selector SELECTOR | --all-replicas]",
		Short: "Run a runbook against the cluster, recording every step",
		Example: `  kdiag run readiness-probe-failing -p pod=my-broken-pod
  kdiag run ./my-runbook.star -p pod=web-0 -n shop --dry-run
  kdiag run readiness-probe-failing --params-file incident.yaml --yes -o json
  kdiag run readiness-probe-failing --selector app=web -n shop        # every pod app=web, grouped by verdict
  kdiag run readiness-probe-failing -p pod=web-7d9f-x2x -n shop --all-replicas`,
		Args:              exactArgs(1, "one runbook (a .star path or a runbook name)"),
		ValidArgsFunction: completeRunbooks(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd, args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.params, "param", "p", nil, "a runbook parameter, key=value (repeatable)")
	cmd.RegisterFlagCompletionFunc("param", completeParams(g, &o.params))
	fs.StringVar(&o.paramsFile, "params-file", "", "a YAML file of runbook parameters")
	fs.StringVar(&o.record, "record", "", "where to write the transcript (default .kdiag/runs/TIME-NAME.jsonl)")
	fs.BoolVar(&o.noRecord, "no-record", false, "do not write a transcript")
	fs.StringVar(&o.dryRun, "dry-run", "none", "none, client (plan mutations, send nothing) or server (send with dryRun=All)")
	fs.Lookup("dry-run").NoOptDefVal = "client"
	fs.BoolVar(&o.yes, "yes", false, "approve every mutation without asking")
	o.output = addOutputFlag(cmd, reportOutputs)
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print only the report (no progress, no transcript path)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "stop the whole run after this long (0: no limit)")
	fs.Uint64Var(&o.maxSteps, "max-steps", engine.DefaultMaxSteps, "stop a runbook after this many Starlark computation steps (0: no limit)")
	fs.Uint64Var(&o.maxHeapMiB, "max-heap", 1024, "stop a runbook when kdiag's heap grows past this many MiB (0: no limit); the transcript is completed")
	fs.StringArrayVar(&o.labelArgs, "label", nil, "a label recorded in the transcript header, key=value (repeatable)")
	fs.StringSliceVar(&o.allow, "allow-builtins", nil, "approve only these write built-ins (comma-separated; empty: none) and refuse the others, without asking")
	fs.StringVar(&o.frameKey, "frame-key-file", "", "sign every --stream-transcript frame with the HMAC key in this file (kdiag serve's Job executor passes a per-run key)")
	fs.StringVarP(&o.fleet.selector, "selector", "l", "", "run for every pod this label selector matches (a fleet run: a transcript per pod, the runs grouped by verdict)")
	fs.BoolVarP(&o.fleet.allNS, "all-namespaces", "A", false, "with --selector: the pods of every namespace")
	fs.BoolVar(&o.fleet.allReplicas, "all-replicas", false, "run for every replica of -p pod= (the pods of its Deployment, StatefulSet, DaemonSet, ReplicaSet or Job)")
	fs.IntVar(&o.fleet.concurrency, "concurrency", 4, "a fleet run's runs at once (never two on one node)")
	fs.StringVar(&o.bundleDir, "bundle", "", "run RUNBOOK from the bundle mounted at this directory (kdiag serve's Job executor ships one per repository runbook): its files and loads only, checked against --bundle-digest first")
	fs.StringVar(&o.bundleSum, "bundle-digest", "", "the sha256:HEX digest the --bundle must have")
	fs.BoolVar(&o.stream, "stream-transcript", false, "also write every event to stdout as it is recorded, as kdiag-transcript frames (kdiag serve's Job executor reads them); the report goes to stderr")
	return cmd
}

func (o *runOptions) complete(cmd *cobra.Command, args []string) error {
	o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
	o.runbook = args[0]
	var err error
	if o.bundleDir != "" || o.bundleSum != "" {
		if o.module, o.loader, err = openBundle(o.bundleDir, o.bundleSum, o.runbook); err != nil {
			return err
		}
	} else if o.module, err = resolveRunbook(o.g, o.runbook); err != nil {
		return err
	}
	o.raw = map[string]any{}
	if o.paramsFile != "" {
		b, err := os.ReadFile(o.paramsFile)
		if err != nil {
			return usageErrorf("--params-file: %v", err)
		}
		if err := yaml.Unmarshal(b, &o.raw); err != nil {
			return usageErrorf("--params-file %s: not a YAML mapping of params: %v", o.paramsFile, err)
		}
		if o.raw == nil {
			o.raw = map[string]any{}
		}
	}
	for _, kv := range o.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("-p %q: want key=value", kv)
		}
		o.raw[k] = v
	}
	if o.dryRun == "none" {
		o.dryRun = ""
	}
	o.labels = map[string]string{}
	for _, kv := range o.labelArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("--label %q: want key=value", kv)
		}
		o.labels[k] = v
	}
	o.allowSet = cmd.Flags().Changed("allow-builtins")
	return nil
}

func (o *runOptions) validate() error {
	switch o.dryRun {
	case "", "client", "server":
	default:
		return usageErrorf("--dry-run=%s: want none, client or server", o.dryRun)
	}
	if o.noRecord && o.record != "" {
		return usageErrorf("--record and --no-record contradict each other")
	}
	if o.yes && o.allowSet {
		return usageErrorf("--yes approves every write built-in, --allow-builtins only some: give one of them")
	}
	return o.validateFleet()
}

func (o *runOptions) run(ctx context.Context) error {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("the run took longer than --timeout %s", o.timeout))
		defer cancel()
	}
	if o.fleet.on() {
		return o.runFleet(ctx)
	}
	cfg := o.g.config()
	specs := builtins.All(cfg)
	loader := o.loader
	if loader == nil {
		loader = o.g.loader()
	}
	approver, hint, err := o.approver(specs)
	if err != nil {
		return err
	}
	con := newConsole(o.errOut)
	if o.quiet {
		con = newConsole(io.Discard)
	}
	observe := con.event
	var frames *transcript.FrameWriter
	if o.stream {
		frames = transcript.NewFrameWriter(o.out)
		if o.frameKey != "" {
			key, err := os.ReadFile(o.frameKey)
			if err != nil || len(key) < 16 {
				return &engine.UsageError{Err: fmt.Errorf("--frame-key-file: want a key of at least 16 bytes: %v", err)}
			}
			frames = transcript.NewSignedFrameWriter(o.out, key)
		}
		observe = func(e *transcript.Event) { frames.Event(e); con.event(e) }
		o.out = o.errOut
	}
	// The runbook and its params are checked before anything touches
	// the cluster.
	l := o.launch(cfg, specs, loader, approver, hint, o.raw, o.labels)
	l.Options.Observer, l.Options.Progress = observe, con.progress
	l.Defaults = func(rb *engine.Runbook, raw map[string]any) { defaultNamespace(rb, raw, cfg) }
	l.TranscriptPath = o.transcriptPath
	res, path, err := l.Start(ctx)
	if err != nil {
		return err
	}
	con.done()
	if frames != nil && frames.Err() != nil && res.Err == nil {
		res.Err = frames.Err()
	}
	if res.Header != nil {
		if err := report.RenderWith(o.out, res.Transcript(), o.output.value, report.Options{Color: o.g.color.enabled(o.out)}); err != nil {
			return err
		}
	}
	if path != "" && res.Header != nil && !o.quiet {
		fmt.Fprintf(o.errOut, "transcript: %s\n", path)
	}
	if res.Backtrace != "" {
		fmt.Fprintln(o.errOut, "  "+indentLines(res.Backtrace))
		return &silentError{res.Err}
	}
	return res.Err
}

// openBundle verifies the bundle at dir against digest and returns its
// runbook, which must be the one asked for, and a loader over its files.
func openBundle(dir, digest, runbook string) (string, *engine.Loader, error) {
	if dir == "" || digest == "" {
		return "", nil, usageErrorf("--bundle DIR and --bundle-digest sha256:HEX go together")
	}
	b, err := bundle.ReadDir(dir, digest)
	if err != nil {
		return "", nil, &engine.UsageError{Err: err}
	}
	if b.Manifest.Runbook != runbook {
		return "", nil, usageErrorf("--bundle %s holds runbook %s, not %s", dir, b.Manifest.Runbook, runbook)
	}
	return runbook, b.Loader(), nil
}

// launch returns the run of the runbook with raw params and labels under
// kdiag run's flags: its policy, limits and target, and the RBAC preflight.
func (o *runOptions) launch(cfg builtins.Config, specs []*engine.Spec, loader *engine.Loader, approver engine.Approver, hint string, raw map[string]any, labels map[string]string) engine.Launch {
	return engine.Launch{
		Module: o.module,
		Options: engine.Options{
			Specs: specs, Loader: loader, Params: raw, DryRun: engine.DryRun(o.dryRun),
			Approver: approver, RefusalHint: hint,
			MaxSteps: o.maxSteps, MaxHeapBytes: o.maxHeapMiB << 20, Version: version, Labels: labels,
			Target: transcript.Target{Kubeconfig: cfg.Kubeconfig, Context: cfg.Context, Namespace: cfg.Namespace},
		},
		Preflight: func(ctx context.Context, rb *engine.Runbook, params map[string]any) error {
			return builtins.Preflight(ctx, cfg, rb, params, o.mayWrite(approver))
		},
	}
}

// transcriptPath returns where the run's transcript goes: --record, else
// .kdiag/runs/TIME-NAME.jsonl; "" with --no-record.
func (o *runOptions) transcriptPath(rb *engine.Runbook) string {
	switch {
	case o.noRecord:
		return ""
	case o.record != "":
		return o.record
	}
	return filepath.Join(".kdiag", "runs", time.Now().UTC().Format("20060102T150405Z")+"-"+rb.Name+".jsonl")
}

// approver returns the run's Approver and, when it is nil, the hint of
// refusals: with --allow-builtins an allow-list (empty: nothing approved)
// named after the route label if there is one, else the prompt or --yes.
// mayWrite says which write built-ins this run can really send, so that
// the preflight does not demand permissions a refused or client-side
// planned write never uses.
func (o *runOptions) mayWrite(a engine.Approver) func(string) bool {
	ap, interactive := a.(*approver)
	switch {
	case o.dryRun == string(engine.DryRunClient) || a == nil || interactive && !ap.yes && !ap.tty:
		return func(string) bool { return false }
	case o.allowSet:
		return func(b string) bool { return slices.Contains(o.allow, b) }
	}
	return nil
}

func (o *runOptions) approver(specs []*engine.Spec) (engine.Approver, string, error) {
	if !o.allowSet {
		return newApprover(o.yes, o.errOut), "", nil
	}
	var writes []string
	for _, s := range specs {
		if s.Effect == engine.Write {
			writes = append(writes, s.Name)
		}
	}
	for _, b := range o.allow {
		if !slices.Contains(writes, b) {
			return nil, "", usageErrorf("--allow-builtins: %q is not a write built-in (write built-ins: %s)", b, strings.Join(writes, ", "))
		}
	}
	who := "--allow-builtins"
	if r := o.labels["route"]; r != "" {
		who = fmt.Sprintf("route %q", r)
	}
	if len(o.allow) == 0 {
		return nil, who + " allows no write built-in", nil
	}
	return allowList{who: who, names: o.allow}, "", nil
}
