// Package fleet runs one runbook for many pods — the replicas of a
// workload, or the pods a label selector matches — and answers the first
// question of an incident, "is it every replica or just this one?", by
// grouping the runs by verdict: "3 of 4 pods: …; 1 of 4 pods: …".
//
// Run bounds the concurrency and runs at most one pod of a node at a
// time, so that a node has at most one node agent of the fleet's runs.
// Outcomes come from each run's transcript (Of), so a recorded fleet
// reports and replays the same as it ran.
package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// Target is one pod of a fleet run.
type Target struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Node is the node the pod runs on ("" when not scheduled).
	Node string `json:"node,omitempty"`
}

// String returns NAMESPACE/POD.
func (t Target) String() string { return t.Namespace + "/" + t.Pod }

// Outcome is one pod's run.
type Outcome struct {
	Target
	// Status is the run's status (ok, failed, error, cancelled, …), or
	// "not-started" when the run could not start (Error says why).
	Status string `json:"status"`
	// Verdict is the run's verdict, "" when it gave none.
	Verdict string `json:"verdict,omitempty"`
	// Transcript is the file the run was recorded in.
	Transcript string `json:"transcript,omitempty"`
	// Error is why the run failed or could not start.
	Error string `json:"error,omitempty"`
}

// Of returns the outcome that a transcript records for target.
func Of(target Target, t *transcript.Transcript, path string) Outcome {
	r := report.Build(t)
	o := Outcome{Target: target, Status: r.Status, Verdict: r.Verdict, Transcript: path}
	if r.Status != "ok" {
		o.Error = r.Message
	}
	return o
}

// TargetOf returns the pod a transcript's run was about, from its pod and
// namespace params.
func TargetOf(t *transcript.Transcript) Target {
	var tg Target
	if t.Header != nil {
		tg.Pod, _ = t.Header.Params["pod"].(string)
		tg.Namespace, _ = t.Header.Params["namespace"].(string)
	}
	return tg
}

// Run calls run for every target, at most concurrency at a time (at least
// one) and at most one per node, and returns the outcomes in the order of
// targets. A cancelled ctx starts no more runs; those not started are
// "not-started".
func Run(ctx context.Context, targets []Target, concurrency int, run func(context.Context, Target) Outcome) []Outcome {
	if concurrency < 1 {
		concurrency = 1
	}
	out := make([]Outcome, len(targets))
	started := make([]bool, len(targets))
	busy := map[string]bool{}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	running := 0
	// next returns the index of a target that may start now, or -1 when
	// none is left; it waits while every remaining one's node is busy.
	next := func() int {
		mu.Lock()
		defer mu.Unlock()
		for {
			left := false
			for i, t := range targets {
				if started[i] {
					continue
				}
				left = true
				if ctx.Err() != nil {
					return -1
				}
				if t.Node == "" || !busy[t.Node] {
					started[i] = true
					if t.Node != "" {
						busy[t.Node] = true
					}
					running++
					return i
				}
			}
			if !left || running == 0 {
				return -1
			}
			cond.Wait()
		}
	}
	var wg sync.WaitGroup
	for range min(concurrency, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next(); i >= 0; i = next() {
				o := run(ctx, targets[i])
				o.Target = targets[i]
				mu.Lock()
				out[i] = o
				if targets[i].Node != "" {
					busy[targets[i].Node] = false
				}
				running--
				cond.Broadcast()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range out {
		if !started[i] {
			out[i] = Outcome{Target: targets[i], Status: "not-started", Error: "the fleet run was cancelled before this pod's run started"}
		}
	}
	return out
}

// Group is the pods whose runs ended alike: the same status and the same
// verdict once each pod's own name is taken out of it.
type Group struct {
	Status string `json:"status"`
	// Verdict is the shared verdict, the pod's name written <pod>.
	Verdict string   `json:"verdict,omitempty"`
	Pods    []Target `json:"pods"`
}

// Summarize groups outcomes by status and verdict, the largest group
// first (ties in the order of their first pod).
func Summarize(outs []Outcome) []Group {
	var groups []Group
	for _, o := range outs {
		v := o.Verdict
		if o.Pod != "" {
			v = strings.ReplaceAll(v, o.Pod, "<pod>")
		}
		i := slices.IndexFunc(groups, func(g Group) bool { return g.Status == o.Status && g.Verdict == v })
		if i < 0 {
			groups = append(groups, Group{Status: o.Status, Verdict: v})
			i = len(groups) - 1
		}
		groups[i].Pods = append(groups[i].Pods, o.Target)
	}
	slices.SortStableFunc(groups, func(a, b Group) int { return len(b.Pods) - len(a.Pods) })
	return groups
}

// Summary is a fleet run's report: what ran, on which pods, and how they
// group.
type Summary struct {
	Runbook  string    `json:"runbook"`
	Selector string    `json:"selector,omitempty"`
	Pods     []Outcome `json:"pods"`
	Groups   []Group   `json:"groups"`
}

// Text returns the summary for people: one paragraph per group, printable
// (workload-controlled verdicts are escaped).
func (s *Summary) Text() string {
	var b strings.Builder
	n := len(s.Pods)
	what := s.Runbook
	if s.Selector != "" {
		what += " on " + s.Selector
	}
	fmt.Fprintf(&b, "fleet: %s: %d pod%s\n", report.Printable(what), n, plural(n))
	for _, g := range s.Groups {
		verdict := g.Verdict
		if verdict == "" {
			verdict = "(no verdict)"
		}
		status := ""
		if g.Status != "ok" {
			status = " (run " + g.Status + ")"
		}
		fmt.Fprintf(&b, "  %d of %d pod%s%s: %s\n", len(g.Pods), n, plural(n), report.Printable(status), report.Printable(verdict))
		names := make([]string, len(g.Pods))
		for i, p := range g.Pods {
			names[i] = p.String()
			if p.Node != "" {
				names[i] += " (node " + p.Node + ")"
			}
		}
		fmt.Fprintf(&b, "      %s\n", report.Printable(strings.Join(names, ", ")))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
