package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/engine/report"
)

// fleetFlags are kdiag run's options for running a runbook on many pods.
type fleetFlags struct {
	selector    string
	allNS       bool
	allReplicas bool
	concurrency int
}

// on says whether the run is a fleet run.
func (f *fleetFlags) on() bool { return f.selector != "" || f.allReplicas }

// validateFleet checks the fleet flags against the others.
func (o *runOptions) validateFleet() error {
	f := &o.fleet
	switch {
	case !f.on() && f.allNS:
		return usageErrorf("--all-namespaces goes with --selector")
	case !f.on():
		return nil
	case f.selector != "" && f.allReplicas:
		return usageErrorf("--selector and --all-replicas both name the pods: give one of them")
	case f.allReplicas && o.raw["pod"] == nil:
		return usageErrorf("--all-replicas runs on the replicas of -p pod=NAME: give the pod")
	case f.allNS && f.allReplicas:
		return usageErrorf("--all-replicas finds the replicas in the pod's namespace; --all-namespaces goes with --selector")
	case o.stream:
		return usageErrorf("--stream-transcript streams one run; a fleet run writes one transcript per pod")
	case o.bundleDir != "":
		return usageErrorf("--bundle is one Job's run of kdiag serve; a fleet run reads the runbook as kdiag run does")
	case o.noRecord:
		return usageErrorf("a fleet run records one transcript per pod (its report is built from them); drop --no-record")
	case f.concurrency < 1 || f.concurrency > 64:
		return usageErrorf("--concurrency=%d: want 1 to 64", f.concurrency)
	case o.output.value == "html":
		return usageErrorf("-o html renders one run: use -o text, markdown, json or yaml for a fleet run, then kdiag report -o html on a pod's transcript")
	}
	return nil
}

// runFleet runs the runbook for every pod the fleet flags name, each with
// its own transcript in one directory, and prints the runs grouped by
// verdict. Mutations are approved only by --yes or --allow-builtins (no
// prompts: runs go on at the same time).
func (o *runOptions) runFleet(ctx context.Context) error {
	cfg := o.g.config()
	clients := cfg.Clients()
	prog, err := engine.Load(o.module, engine.Options{Specs: builtins.All(cfg), Loader: o.g.loader()})
	if err != nil {
		return err
	}
	hasNS := slices.ContainsFunc(prog.Runbook.Params, func(p engine.ParamDecl) bool { return p.Name == "namespace" })
	if !slices.ContainsFunc(prog.Runbook.Params, func(p engine.ParamDecl) bool { return p.Name == "pod" }) {
		return usageErrorf("%s has no pod param: a fleet run gives each of its runs pod= (and namespace=)", prog.Runbook.Path)
	}
	cs, _, err := clients.Kube()
	if err != nil {
		return err
	}
	ns, _ := o.raw["namespace"].(string)
	if ns == "" {
		ns = clients.Namespace()
	}
	selector, where := o.fleet.selector, "namespace "+ns
	if o.fleet.allReplicas {
		pod := fmt.Sprint(o.raw["pod"])
		sel, owner, err := kube.ReplicaSelector(ctx, cs, ns, pod)
		if err != nil {
			return fmt.Errorf("--all-replicas: %w", err)
		}
		selector, where = sel, owner+" in "+ns
	}
	if o.fleet.allNS {
		ns, where = "", "all namespaces"
	}
	pods, err := kube.SelectPods(ctx, cs, ns, selector)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("no pod matches %s in %s", selector, where)
	}
	targets := make([]fleet.Target, len(pods))
	for i, p := range pods {
		targets[i] = fleet.Target{Namespace: p.Namespace, Pod: p.Name, Node: p.Spec.NodeName}
	}
	dir := o.record
	if dir == "" {
		dir = filepath.Join(".kdiag", "runs", time.Now().UTC().Format("20060102T150405Z")+"-"+prog.Runbook.Name+"-fleet")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--record: %v", err)
	}
	approve, hint, err := o.approver(builtins.All(cfg))
	if err != nil {
		return err
	}
	if a, ok := approve.(*approver); ok {
		a.tty = false // no prompts while several runs go on
	}
	var mu sync.Mutex
	if !o.quiet {
		fmt.Fprintf(o.errOut, "fleet: %s on %d pods (%s in %s), %d at a time, one per node; transcripts in %s\n",
			prog.Runbook.Name, len(targets), selector, where, min(o.fleet.concurrency, len(targets)), dir)
	}
	outs := fleet.Run(ctx, targets, o.fleet.concurrency, func(ctx context.Context, tg fleet.Target) fleet.Outcome {
		raw := maps.Clone(o.raw)
		raw["pod"] = tg.Pod
		if hasNS {
			raw["namespace"] = tg.Namespace
		}
		path := filepath.Join(dir, tg.Namespace+"_"+tg.Pod+".jsonl")
		labels := maps.Clone(o.labels)
		labels["fleet"] = selector
		l := o.launch(cfg, builtins.All(cfg), o.g.loader(), approve, hint, raw, labels)
		l.TranscriptPath = func(*engine.Runbook) string { return path }
		res, _, err := l.Start(ctx)
		out := fleet.Outcome{Target: tg, Status: "not-started"}
		if err != nil {
			out.Error = err.Error()
		} else if res.Header != nil {
			out = fleet.Of(tg, res.Transcript(), path)
		}
		if !o.quiet {
			mu.Lock()
			fmt.Fprintf(o.errOut, "  %s: %s\n", tg, fleetLine(out))
			mu.Unlock()
		}
		return out
	})
	sum := &fleet.Summary{Runbook: prog.Runbook.Name, Selector: selector + " in " + where, Pods: outs, Groups: fleet.Summarize(outs)}
	if err := writeFleet(o.out, sum, o.output.value); err != nil {
		return err
	}
	bad := 0
	for _, out := range outs {
		if out.Status != "ok" {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("fleet: %d of %d runs did not end ok (transcripts in %s)", bad, len(outs), dir)
	}
	return ctx.Err()
}

// fleetLine is one pod's outcome on a line, printable.
func fleetLine(o fleet.Outcome) string {
	s := o.Verdict
	if s == "" {
		s = "(no verdict)"
	}
	if o.Status != "ok" {
		s = "run " + o.Status + ": " + s
		if o.Error != "" {
			s += " (" + o.Error + ")"
		}
	}
	return report.Printable(s)
}

// writeFleet renders a fleet summary: text and markdown for people, json
// and yaml as data.
func writeFleet(w io.Writer, s *fleet.Summary, format string) error {
	switch format {
	case "json", "yaml":
		return writeData(w, format, s)
	case "markdown":
		_, err := fmt.Fprintf(w, "```\n%s```\n", s.Text())
		return err
	}
	_, err := io.WriteString(w, s.Text())
	return err
}

// fleetOf reads the transcripts of a fleet run's directory (or the files
// given) and returns its summary; unreadable files are errors.
func fleetOf(paths []string) (*fleet.Summary, error) {
	var files []string
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(p, "*.jsonl"))
			files = append(files, m...)
			continue
		}
		files = append(files, p)
	}
	if len(files) == 0 {
		return nil, usageErrorf("no transcripts (*.jsonl) in %s", strings.Join(paths, ", "))
	}
	sum := &fleet.Summary{}
	for _, f := range files {
		t, err := readTranscript(f)
		if t == nil {
			return nil, err
		}
		out := fleet.Of(fleet.TargetOf(t), t, f)
		if err != nil {
			out.Status, out.Error = "truncated", err.Error()
		}
		if sum.Runbook == "" && t.Header != nil {
			sum.Runbook, sum.Selector = t.Header.Name, t.Header.Labels["fleet"]
		}
		sum.Pods = append(sum.Pods, out)
	}
	sum.Groups = fleet.Summarize(sum.Pods)
	return sum, nil
}
