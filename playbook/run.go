package playbook

import (
	"context"
	"fmt"
	"os"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// admit deduplicates the alert by fingerprint and, if there is room in
// the queue, records and starts its run. It returns the run id (the new
// one, or the one that deduplicated it), the outcome and a reason.
func (s *Server) admit(rt *route, a Alert, params map[string]any) (string, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	if id, ok := s.lastRun[a.Fingerprint]; ok {
		m := s.runs[id]
		switch {
		case !m.Done():
			return id, OutcomeDeduplicated, "a run for this alert is " + m.Status
		case m.Status != StatusInterrupted && m.Ended != nil && now.Sub(*m.Ended) < s.cfg.DedupeWindow:
			return id, OutcomeDeduplicated, fmt.Sprintf("a run for this alert ended %s ago (dedupe_window %s)", now.Sub(*m.Ended).Round(1e9), s.cfg.DedupeWindow)
		}
	}
	if s.closed {
		return "", OutcomeRejected, "the server is shutting down"
	}
	if s.waiting+s.inflight >= s.cfg.Concurrency+s.cfg.Queue {
		return "", OutcomeRejected, fmt.Sprintf("%d runs in flight and %d queued (concurrency %d, queue %d)", s.inflight, s.waiting, s.cfg.Concurrency, s.cfg.Queue)
	}
	m := &Meta{ID: newID(now), Status: StatusQueued, Route: rt.name, Runbook: rt.module, RunbookName: rt.runbook.Name,
		Params: params, Policy: rt.policy, Alert: a, Executor: s.exec.Name(), Received: now}
	if err := s.store.Save(m); err != nil {
		return "", OutcomeError, err.Error()
	}
	s.runs[m.ID] = m
	s.lastRun[a.Fingerprint] = m.ID
	s.waiting++
	req := RunRequest{
		ID: m.ID, Runbook: rt.module, Params: params, Policy: rt.policy, Timeout: rt.timeout,
		TranscriptPath: s.store.TranscriptPath(m.ID),
		Labels:         map[string]string{"alertname": a.Labels["alertname"], "fingerprint": a.Fingerprint, "route": rt.name, "run": m.ID},
	}
	s.wg.Add(1)
	go s.execute(m, req)
	return m.ID, OutcomeStarted, ""
}

// execute waits for a slot, runs m through the executor and stores the
// outcome.
func (s *Server) execute(m *Meta, req RunRequest) {
	defer s.wg.Done()
	ctx := s.runsCtx
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		s.finish(m, Outcome{Status: StatusCancelled, Message: "cancelled while queued: " + context.Cause(ctx).Error()})
		return
	}
	defer func() { <-s.slots }()
	s.mu.Lock()
	s.waiting--
	s.inflight++
	started := s.now().UTC()
	m.Status, m.Started = StatusRunning, &started
	err := s.store.Save(m)
	s.mu.Unlock()
	var out Outcome
	if err != nil {
		out = Outcome{Status: StatusFailed, Message: err.Error()}
	} else if h, err := s.exec.Start(ctx, req); err != nil {
		out = Outcome{Status: StatusFailed, Message: "executor " + s.exec.Name() + ": " + err.Error()}
	} else {
		out = h.Wait()
	}
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
	s.finish(m, out)
}

// finish renders the reports from the transcript, stores the run's final
// metadata, counts it and notifies.
func (s *Server) finish(m *Meta, out Outcome) {
	var rep *report.Report
	if _, err := os.Stat(s.store.TranscriptPath(m.ID)); err == nil {
		t, terr := transcript.ReadFile(s.store.TranscriptPath(m.ID))
		if t != nil {
			rep = report.Build(t)
			if err := s.store.WriteReports(m.ID, t); err != nil {
				s.log.Error("reports", "run", m.ID, "err", err)
			}
		}
		if terr != nil && out.Message == "" {
			out.Message = terr.Error()
		}
	}
	s.mu.Lock()
	ended := s.now().UTC()
	m.Status, m.Message, m.Ended = out.Status, out.Message, &ended
	if rep != nil {
		m.Verdict, m.Findings, m.Changes = rep.Verdict, len(rep.Findings), len(rep.Changes)
	}
	if err := s.store.Save(m); err != nil {
		s.log.Error("store", "run", m.ID, "err", err)
	}
	snap := *m
	s.mu.Unlock()
	var secs float64
	if snap.Started != nil {
		secs = ended.Sub(*snap.Started).Seconds()
	}
	s.metrics.runEnded(snap.Route, snap.RunbookName, snap.Status, secs, snap.Started != nil)
	s.log.Info("run ended", "run", snap.ID, "route", snap.Route, "status", snap.Status, "verdict", snap.Verdict, "message", snap.Message)
	s.notifier.send(&snap)
}

// gauges returns the runs in flight and queued.
func (s *Server) gauges() (inflight, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight, s.waiting
}
