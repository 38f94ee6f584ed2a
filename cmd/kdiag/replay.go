package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

// replayOptions are the options of kdiag replay.
type replayOptions struct {
	g       *globalFlags
	path    string
	runbook string
	output  *outputFlag
	record  string
	quiet   bool

	t      *transcript.Transcript
	out    io.Writer
	errOut io.Writer
}

func newReplayCmd(g *globalFlags) *cobra.Command {
	o := &replayOptions{g: g}
	cmd := &cobra.Command{
		Use:   "replay TRANSCRIPT | FLEET-DIR",
		Short: "Re-run a recorded runbook, answering every call from the transcript (no cluster)",
		Long: `Replay re-executes the runbook recorded in TRANSCRIPT (or --runbook, an edited
version) and answers every built-in call from the transcript, strictly in order.
Nothing touches a cluster or a node. The same calls give the same report; a
different call stops the replay with exit code 3, naming the seq and position.
Given a fleet run's directory (kdiag run --selector), it replays every pod's
transcript and prints the runs grouped by verdict.`,
		Args: exactArgs(1, "one transcript, or the directory of a fleet run"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
				o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
				return o.runFleet(cmd.Context(), args[0])
			}
			if err := o.complete(cmd, args); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.runbook, "runbook", "", "replay this (edited) runbook instead of the recorded one")
	o.output = addOutputFlag(cmd, reportOutputs)
	cmd.Flags().StringVar(&o.record, "record", "", "also write the replayed transcript here")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print only the report")
	return cmd
}

func (o *replayOptions) complete(cmd *cobra.Command, args []string) error {
	o.out, o.errOut, o.path = cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0]
	var err error
	o.t, err = readTranscript(o.path)
	if errors.Is(err, transcript.ErrTruncated) {
		return &engine.UsageError{Err: fmt.Errorf("%v; a truncated transcript cannot be replayed (kdiag report still shows it)", err)}
	}
	return err
}

func (o *replayOptions) run(ctx context.Context) error {
	module, loader, err := o.replayed(o.t)
	if err != nil {
		return err
	}
	opts := engine.Options{Specs: builtins.All(builtins.Config{}), Loader: loader, Replay: o.t, Version: version}
	if !o.quiet {
		opts.Observer = newConsole(o.errOut).event
	}
	var w *transcript.Writer
	if o.record != "" {
		var err error
		if w, err = transcript.Create(o.record); err != nil {
			return err
		}
		opts.Writer = w
	}
	res := engine.Run(ctx, module, opts)
	if w != nil {
		w.Close()
	}
	if res.Header == nil {
		return res.Err
	}
	if o.runbook != "" && !o.quiet {
		for _, line := range changedFiles(o.t.Header.Files, res.Header.Files) {
			fmt.Fprintln(o.errOut, line)
		}
	}
	if err := report.RenderWith(o.out, res.Transcript(), o.output.value, report.Options{Color: o.g.color.enabled(o.out)}); err != nil {
		return err
	}
	if res.Err == nil && !o.quiet {
		fmt.Fprintf(o.errOut, "replayed %d calls from %s: no divergence\n", res.Footer.Calls, o.path)
	}
	return res.Err
}

// replayed returns the runbook a replay of t runs and its loader: the
// recorded files, or --runbook against the current ones.
func (o *replayOptions) replayed(t *transcript.Transcript) (string, *engine.Loader, error) {
	loader := o.g.loader()
	if o.runbook != "" {
		m, err := resolveRunbook(o.g, o.runbook)
		return m, loader, err
	}
	loader.Recorded = map[string]string{}
	for _, f := range t.Header.Files {
		loader.Recorded[f.Path] = f.Source
	}
	loader.Loads = t.Header.Loads
	return t.Header.Runbook, loader, nil
}

// readTranscript reads a transcript, turning format problems into usage
// errors (exit 2). A truncated transcript is returned with its error.
func readTranscript(path string) (*transcript.Transcript, error) {
	t, err := transcript.ReadFile(path)
	if err == nil || errors.Is(err, transcript.ErrTruncated) {
		return t, err
	}
	return nil, &engine.UsageError{Err: err}
}

// changedFiles names the files of a replay against the current runbooks
// that differ from the recording's, with the commits of a pinned
// repository when there are any.
func changedFiles(recorded, now []transcript.File) []string {
	was := map[string]transcript.File{}
	for _, f := range recorded {
		was[f.Path] = f
	}
	var out []string
	for _, f := range now {
		old, ok := was[f.Path]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("changed since the recording: %s is new", f.Path))
		case old.SHA256 != f.SHA256 && old.Commit != "" && f.Commit != "":
			out = append(out, fmt.Sprintf("changed since the recording: %s (%s at %.12s, now %.12s)", f.Path, f.Repo, old.Commit, f.Commit))
		case old.SHA256 != f.SHA256:
			out = append(out, fmt.Sprintf("changed since the recording: %s", f.Path))
		}
	}
	return out
}
