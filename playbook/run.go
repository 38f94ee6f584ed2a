package playbook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// admit deduplicates the alert by fingerprint and, if there is room in
// the queue, records and starts its run. It returns the run id (the new
// one, or the one that deduplicated it), the outcome and a reason.
func (s *Server) admit(rt *route, a Alert, params map[string]any, set *SetTarget) (string, string, string) {
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
		Params: redactParams(params), Policy: rt.policy, Alert: redactAlert(a), Executor: s.exec.Name(), Received: now}
	req := s.request(rt, m.ID, params, a)
	if set != nil {
		m.Set, req.set = &SetMeta{Target: *set}, set
	}
	// Journal the request (real params: 0600, never served, removed when
	// the run ends) and the run before the 200, so that a server killed
	// with the run still queued resumes it at its next start.
	if err := s.store.SaveRequest(m.ID, &Journaled{Params: params, Labels: req.Labels, Set: set}); err != nil {
		return "", OutcomeError, err.Error()
	}
	if err := s.store.Save(m); err != nil {
		return "", OutcomeError, err.Error()
	}
	s.enqueue(m, req)
	s.lastRun[a.Fingerprint] = m.ID
	return m.ID, OutcomeStarted, ""
}

// request returns the RunRequest of run id on route rt.
func (s *Server) request(rt *route, id string, params map[string]any, a Alert) RunRequest {
	return RunRequest{
		ID: id, Runbook: rt.module, Params: params, Policy: rt.policy, Timeout: rt.timeout,
		TranscriptPath: s.store.TranscriptPath(id), Key: episodeKey(rt.name, a),
		Labels: map[string]string{"alertname": a.Labels["alertname"], "fingerprint": a.Fingerprint, "route": rt.name, "run": id},
		fan:    rt.fanout,
	}
}

// enqueue starts the run's goroutine, which waits for a slot; s.mu is
// held.
func (s *Server) enqueue(m *Meta, req RunRequest) {
	s.runs[m.ID] = m
	s.waiting++
	s.wg.Add(1)
	go s.execute(m, req)
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
	s.mu.Lock()
	s.waiting--
	s.inflight++
	started := s.now().UTC()
	m.Status, m.Started = StatusRunning, &started
	err := s.store.Save(m)
	s.mu.Unlock()
	var out Outcome
	if err == nil {
		err = s.prepare(&req)
	}
	if err != nil {
		out = Outcome{Status: StatusFailed, Message: err.Error()}
	} else if req.set != nil {
		out = s.runSet(ctx, m, req)
	} else {
		out = s.start(ctx, req)
	}
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
	<-s.slots // the next run may start while this one is stored and notified
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
		if terr != nil && !errors.Is(terr, transcript.ErrTruncated) && out.Damaged == "" {
			out.Damaged = terr.Error()
		}
		if s.signKey != nil {
			if err := transcript.Sign(s.store.TranscriptPath(m.ID), s.signKey); err != nil {
				s.log.Error("sign transcript", "run", m.ID, "err", err)
			}
		}
	}
	s.mu.Lock()
	ended := s.now().UTC()
	m.Status, m.Message, m.Ended, m.Damaged = out.Status, out.Message, &ended, out.Damaged
	if rep != nil {
		m.Verdict, m.Findings, m.Changes = rep.Verdict, len(rep.Findings), len(rep.Changes)
	}
	if err := s.store.Save(m); err != nil {
		s.log.Error("store", "run", m.ID, "err", err)
	}
	s.store.DropRequest(m.ID)
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

// redactAlert returns the alert as run.json, GET /runs and notifications
// show it: labels, annotations and the generator URL through the
// engine's redaction rules (the fingerprint is kept: it dedupes).
func redactAlert(a Alert) Alert {
	a.Labels, a.Annotations = engine.RedactMap(a.Labels), engine.RedactMap(a.Annotations)
	a.GeneratorURL = engine.RedactString(a.GeneratorURL)
	return a
}

// redactParams returns a redacted copy of a run's params for run.json;
// the run itself gets the real values.
func redactParams(p map[string]any) map[string]any {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	var c map[string]any
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return engine.Redact(c).(map[string]any)
}

// episodeKey identifies one firing episode of an alert on a route, the
// same on every replica: the route, the fingerprint and when the alert
// started firing (Alertmanager repeats keep startsAt; a new episode after
// a resolve has a new one).
func episodeKey(route string, a Alert) string {
	h := sha256.Sum256([]byte(route + "\x00" + a.Fingerprint + "\x00" + a.StartsAt.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h[:10])
}

// start starts req on the server's executor and waits for its outcome:
// duplicate when another replica holds its episode, failed when the
// executor could not start it.
func (s *Server) start(ctx context.Context, req RunRequest) Outcome {
	h, err := s.exec.Start(ctx, req)
	if err != nil {
		var dup *DuplicateError
		if errors.As(err, &dup) {
			return Outcome{Status: StatusDuplicate, Message: dup.Error()}
		}
		return Outcome{Status: StatusFailed, Message: "executor " + s.exec.Name() + ": " + err.Error()}
	}
	return h.Wait()
}
