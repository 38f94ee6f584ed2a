package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/engine/report"
)

// runFleet replays every transcript of a fleet run's directory (each
// against its recorded files, or against --runbook) and prints the
// replayed runs grouped by verdict; a divergence in any is exit 3.
func (o *replayOptions) runFleet(ctx context.Context, dir string) error {
	if o.record != "" {
		return usageErrorf("--record writes one replay; a fleet directory replays many")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) == 0 {
		return usageErrorf("no transcripts (*.jsonl) in %s", dir)
	}
	sum := &fleet.Summary{}
	var first error
	for _, f := range files {
		t, err := readTranscript(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		module, loader, err := o.replayed(t)
		if err != nil {
			return err
		}
		res := engine.Run(ctx, module, engine.Options{Specs: builtins.All(builtins.Config{}), Loader: loader, Replay: t, Version: version})
		out := fleet.Outcome{Target: fleet.TargetOf(t), Status: "not-started", Transcript: f}
		if res.Header != nil {
			out = fleet.Of(fleet.TargetOf(t), res.Transcript(), f)
		}
		var div *engine.DivergenceError
		if errors.As(res.Err, &div) {
			out.Status, out.Error = "diverged", res.Err.Error()
		} else if res.Err != nil && res.Header == nil {
			out.Error = res.Err.Error()
		}
		if res.Err != nil && first == nil && out.Status != "ok" {
			first = fmt.Errorf("%s: %w", f, res.Err)
		}
		if !o.quiet {
			fmt.Fprintf(o.errOut, "  %s: %s\n", report.Printable(out.Target.String()), fleetLine(out))
		}
		if sum.Runbook == "" {
			sum.Runbook, sum.Selector = t.Header.Name, t.Header.Labels["fleet"]
		}
		sum.Pods = append(sum.Pods, out)
	}
	sum.Groups = fleet.Summarize(sum.Pods)
	if err := writeFleet(o.out, sum, o.output.value); err != nil {
		return err
	}
	return first
}
