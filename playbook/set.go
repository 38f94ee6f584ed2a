package playbook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// SetMeta is a fan-out run's set: what the alert named, the pods it
// resolved to, each pod's outcome and the pods grouped by verdict. The
// pods' transcripts are NAMESPACE_POD.jsonl in the run's directory, the
// layout of a kdiag run --selector directory, so kdiag report and kdiag
// replay read the directory as a fleet.
type SetMeta struct {
	// Target is what the alert named, rendered and checked.
	Target SetTarget `json:"target"`
	// Selector is the label selector the pods were listed with.
	Selector string `json:"selector,omitempty"`
	// Owner is the pods' workload (Kind/name) when the target named one.
	Owner string `json:"owner,omitempty"`
	// Matched is how many pods the selector matched.
	Matched int `json:"matched"`
	// LeftOut says why matched pods did not run (over max_pods).
	LeftOut string `json:"left_out,omitempty"`
	// Pods are the pods that run, in name order: their status is pending
	// until their run starts, running, then the run's.
	Pods []fleet.Outcome `json:"pods"`
	// Groups are the pods that ended alike, the largest group first.
	Groups []fleet.Group `json:"groups,omitempty"`
}

// The statuses of a set's pod before its run ends.
const (
	podPending = "pending"
	podRunning = "running"
)

// Summary returns the set as a fleet summary (kdiag report's of the
// set's directory).
func (m *SetMeta) Summary(runbook string) *fleet.Summary {
	return &fleet.Summary{Runbook: runbook, Selector: m.Target.String(), Pods: m.Pods, Groups: m.Groups}
}

// setVerdict is the set's verdict on one line: "3 of 4 pods: …; 1 of 4
// pods: …".
func setVerdict(groups []fleet.Group, n int) string {
	var parts []string
	for _, g := range groups {
		v := g.Verdict
		if v == "" {
			v = "(no verdict)"
		}
		if g.Status != StatusOK {
			v = "run " + g.Status + ": " + v
		}
		parts = append(parts, fmt.Sprintf("%d of %d pod%s: %s", len(g.Pods), n, plural(n), v))
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// podKey is the episode key of one pod of a set: a replica of the
// server given the same alert claims the same pods.
func podKey(setKey string, t fleet.Target) string {
	h := sha256.Sum256([]byte(setKey + "\x00" + t.Namespace + "/" + t.Pod))
	return hex.EncodeToString(h[:10])
}

// resolveSet finds the pods of the set's target, in its namespace only,
// and bounds them by the route's max_pods.
func (s *Server) resolveSet(ctx context.Context, m *Meta, f *fanout, tg SetTarget) ([]fleet.Target, error) {
	if tg.Namespace == "" {
		return nil, errors.New("fanout: no namespace") // never all namespaces
	}
	sel, owner := tg.Selector, ""
	var err error
	switch {
	case tg.Owner != "":
		kind, name, _ := strings.Cut(tg.Owner, "/")
		sel, err = s.pods.WorkloadSelector(ctx, tg.Namespace, kind, name)
		owner = tg.Owner
	case tg.ReplicasOf != "":
		sel, owner, err = s.pods.ReplicaSelector(ctx, tg.Namespace, tg.ReplicasOf)
	}
	if err != nil {
		return nil, fmt.Errorf("fanout: %v", err)
	}
	if sel == "" {
		return nil, fmt.Errorf("fanout: %s has no selector; kdiag does not run on every pod of a namespace", tg)
	}
	all, err := s.pods.Pods(ctx, tg.Namespace, sel)
	if err != nil {
		return nil, fmt.Errorf("fanout: %v", err)
	}
	var targets []fleet.Target
	for _, t := range all {
		if t.Namespace == tg.Namespace {
			targets = append(targets, t)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.Set.Selector, m.Set.Owner, m.Set.Matched = sel, owner, len(targets)
	if err := s.claimPods(m, setKey(m.Route, tg.Namespace, sel)); err != nil {
		return nil, err
	}
	switch n := len(targets); {
	case n == 0:
		return nil, fmt.Errorf("fanout: no pod matches %s in namespace %s (%s)", sel, tg.Namespace, tg)
	case n > f.maxPods && !f.truncate:
		return nil, fmt.Errorf("fanout: %d pods match %s in namespace %s, over fanout.max_pods %d: nothing ran (raise max_pods, or set over_max: first to run the first %d by name)", n, sel, tg.Namespace, f.maxPods, f.maxPods)
	case n > f.maxPods:
		m.Set.LeftOut = fmt.Sprintf("%d pods match %s; the first %d by name ran, %d were left out (fanout.max_pods %d, over_max: first)", n, sel, f.maxPods, n-f.maxPods, f.maxPods)
		targets = targets[:f.maxPods]
	}
	m.Set.Pods = make([]fleet.Outcome, len(targets))
	for i, t := range targets {
		m.Set.Pods[i] = fleet.Outcome{Target: t, Status: podPending}
	}
	if err := s.store.Save(m); err != nil {
		return nil, err
	}
	return targets, nil
}

// setKey identifies the pods of a set: its route, namespace and
// selector. Alerts with other fingerprints may name the same pods (each
// replica's KubePodNotReady on a replicas_of route, or two alerts about
// one Deployment).
func setKey(route, ns, selector string) string { return route + "\x00" + ns + "\x00" + selector }

// claimPods records m as the set of key, unless another set of the
// route runs the same pods or ended within the dedupe window: a
// DuplicateError naming it. s.mu is held.
func (s *Server) claimPods(m *Meta, key string) error {
	if id, ok := s.setKeys[key]; ok && id != m.ID {
		if o := s.runs[id]; o != nil {
			now := s.now().UTC()
			what := fmt.Sprintf("run %s of route %s (pods %s in namespace %s)", id, m.Route, m.Set.Selector, m.Set.Target.Namespace)
			switch {
			case !o.Done():
				return &DuplicateError{What: what + ", " + o.Status + ","}
			case o.Status != StatusInterrupted && o.Status != StatusDuplicate && o.Ended != nil && now.Sub(*o.Ended) < s.cfg.DedupeWindow:
				return &DuplicateError{What: fmt.Sprintf("%s, ended %s ago (dedupe_window %s),", what, now.Sub(*o.Ended).Round(time.Second), s.cfg.DedupeWindow)}
			}
		}
	}
	s.setKeys[key] = m.ID
	return nil
}

// runSet runs a fan-out run: it resolves the set, runs the route's
// runbook for each pod through the executor (fanout.concurrency at once,
// one per node), and sums the pods up as the run's verdict.
func (s *Server) runSet(ctx context.Context, m *Meta, req RunRequest) Outcome {
	f := req.fan
	var dup *DuplicateError
	if c, ok := s.exec.(setClaimer); ok {
		claim := req
		claim.ID = m.ID
		if req.Timeout > 0 {
			claim.Timeout = req.Timeout * time.Duration((f.maxPods+f.concurrency-1)/f.concurrency)
		}
		release, err := c.Claim(ctx, claim)
		switch {
		case errors.As(err, &dup):
			return Outcome{Status: StatusDuplicate, Message: dup.Error()}
		case err != nil:
			return Outcome{Status: StatusFailed, Message: "executor " + s.exec.Name() + ": " + err.Error()}
		}
		defer release(true)
	}
	targets, err := s.resolveSet(ctx, m, f, *req.set)
	switch {
	case errors.As(err, &dup):
		return Outcome{Status: StatusDuplicate, Message: "another set runs these pods: " + dup.What + " covers them"}
	case err != nil:
		return Outcome{Status: StatusFailed, Message: err.Error()}
	}
	index := map[fleet.Target]int{}
	for i, t := range targets {
		index[t] = i
	}
	var stopMu sync.Mutex
	var stopped string
	findings, changes := 0, 0
	outs := fleet.Run(ctx, targets, f.concurrency, func(ctx context.Context, t fleet.Target) fleet.Outcome {
		stopMu.Lock()
		why := stopped
		stopMu.Unlock()
		i := index[t]
		if why != "" {
			o := fleet.Outcome{Target: t, Status: "not-started", Error: why}
			s.setPod(m, i, o)
			return o
		}
		s.setPod(m, i, fleet.Outcome{Target: t, Status: podRunning})
		o, fi, ch := s.runPod(ctx, m, req, t, i)
		if f.oneAtATime && o.Status != StatusOK {
			stopMu.Lock()
			stopped = fmt.Sprintf("not run: the run of pod %s ended %s, and fanout.mutations: %s stops at the first run that does not end ok", t.Pod, o.Status, FanoutOneAtATime)
			stopMu.Unlock()
		}
		s.mu.Lock()
		findings, changes = findings+fi, changes+ch
		s.mu.Unlock()
		s.setPod(m, i, o)
		return o
	})
	groups := fleet.Summarize(outs)
	counts := map[string]int{}
	for _, o := range outs {
		counts[o.Status]++
	}
	s.mu.Lock()
	m.Set.Pods, m.Set.Groups = outs, groups
	m.Verdict, m.Findings, m.Changes = setVerdict(groups, len(outs)), findings, changes
	snap := *m.Set
	s.mu.Unlock()
	s.writeSummary(m.ID, snap.Summary(m.RunbookName))
	out := Outcome{Status: StatusOK}
	switch {
	case counts[StatusOK] == len(outs):
	case counts[StatusDuplicate] == len(outs):
		out = Outcome{Status: StatusDuplicate, Message: "another replica of the server runs this alert's pods"}
	case ctx.Err() != nil:
		out = Outcome{Status: StatusCancelled, Message: "cancelled: " + context.Cause(ctx).Error()}
	default:
		out = Outcome{Status: StatusFailed, Message: fmt.Sprintf("%d of %d pod runs did not end ok", len(outs)-counts[StatusOK], len(outs))}
	}
	if snap.LeftOut != "" {
		out.Message = strings.TrimPrefix(out.Message+"; "+snap.LeftOut, "; ")
	}
	return out
}

// setPod records pod i's progress in the set's run.json.
func (s *Server) setPod(m *Meta, i int, o fleet.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.Set.Pods[i] = o
	if err := s.store.Save(m); err != nil {
		s.log.Error("store", "run", m.ID, "err", err)
	}
}

// runPod runs the set's runbook for pod t (the set's i-th) through the
// executor, its transcript NAMESPACE_POD.jsonl in the set's directory,
// and returns its outcome, findings and changes.
func (s *Server) runPod(ctx context.Context, m *Meta, req RunRequest, t fleet.Target, i int) (fleet.Outcome, int, int) {
	name := t.Namespace + "_" + t.Pod + ".jsonl"
	path := filepath.Join(s.store.Dir(m.ID), name)
	preq := req
	preq.fan, preq.set = nil, nil
	preq.ID = fmt.Sprintf("%s-p%02d", m.ID, i+1)
	preq.Params = maps.Clone(req.Params)
	preq.Params["pod"], preq.Params["namespace"] = t.Pod, t.Namespace
	preq.Labels = maps.Clone(req.Labels)
	preq.Labels["pod"], preq.Labels["fleet"] = t.Pod, m.Set.Selector
	preq.TranscriptPath, preq.Key = path, podKey(req.Key, t)
	out := s.start(ctx, preq)
	o := fleet.Outcome{Target: t, Status: out.Status, Error: out.Message}
	findings, changes := 0, 0
	if tr, terr := transcript.ReadFile(path); tr != nil {
		rep := report.Build(tr)
		o.Verdict, o.Transcript = rep.Verdict, name
		findings, changes = len(rep.Findings), len(rep.Changes)
		if o.Error == "" && rep.Status != StatusOK {
			o.Error = rep.Message
		}
		if terr != nil && !errors.Is(terr, transcript.ErrTruncated) {
			o.Status, o.Error = "damaged", terr.Error()
		}
		if s.signKey != nil {
			if err := transcript.Sign(path, s.signKey); err != nil {
				s.log.Error("sign transcript", "run", m.ID, "pod", t.Pod, "err", err)
			}
		}
	}
	s.metrics.podEnded(m.Route, o.Status)
	s.log.Info("set pod ended", "run", m.ID, "pod", t.String(), "status", o.Status, "verdict", o.Verdict)
	return o, findings, changes
}

// writeSummary stores a set's summary as summary.txt and summary.json in
// its directory.
func (s *Server) writeSummary(id string, sum *fleet.Summary) {
	b, err := json.MarshalIndent(sum, "", "  ")
	if err == nil {
		err = writeAtomic(filepath.Join(s.store.Dir(id), "summary.json"), append(b, '\n'))
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(s.store.Dir(id), "summary.txt"), []byte(sum.Text()), 0o600)
	}
	if err != nil {
		s.log.Error("set summary", "run", id, "err", err)
	}
}
