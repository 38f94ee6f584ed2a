package playbook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// The outcomes of one alert of a webhook.
const (
	OutcomeStarted      = "started"      // a run was queued for it
	OutcomeDeduplicated = "deduplicated" // a run for its fingerprint is running or ended within the window
	OutcomeIgnored      = "ignored"      // no route matches it
	OutcomeResolved     = "resolved-ignored"
	OutcomeRejected     = "rejected" // the queue is full or the server is shutting down; retry
	OutcomeError        = "error"    // its params could not be rendered
)

// AlertResult says what the server did with one alert.
type AlertResult struct {
	Fingerprint string `json:"fingerprint"`
	Alertname   string `json:"alertname,omitempty"`
	Status      string `json:"status"`
	Outcome     string `json:"outcome"`
	Route       string `json:"route,omitempty"`
	Run         string `json:"run,omitempty"`
	URL         string `json:"url,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// WebhookResponse is the answer to POST /alerts.
type WebhookResponse struct {
	Alerts []AlertResult `json:"alerts"`
}

// retryAfter is the Retry-After of a 503 when alerts were rejected.
const retryAfter = 30

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	code, resp, err := s.receive(w, r)
	s.metrics.request(code)
	if err != nil {
		s.log.Warn("webhook refused", "code", code, "remote", r.RemoteAddr, "err", err)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kdiag"`)
		}
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, err.Error(), code)
		return
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, code, resp)
}

// receive authenticates, reads and routes a webhook.
func (s *Server) receive(w http.ResponseWriter, r *http.Request) (int, *WebhookResponse, error) {
	authed, err := s.auth.early(r)
	if err != nil {
		return http.StatusUnauthorized, nil, err
	}
	max := s.cfg.MaxBodyBytes
	if r.ContentLength > max {
		return http.StatusRequestEntityTooLarge, nil, fmt.Errorf("body of %d bytes is over the limit of %d (max_body_bytes)", r.ContentLength, max)
	}
	if !authed {
		// The signature needs the body: bound how many such bodies are
		// read at once, and how long each may take.
		select {
		case s.preAuth <- struct{}{}:
			defer func() { <-s.preAuth }()
		default:
			return http.StatusServiceUnavailable, nil, fmt.Errorf("%d unauthenticated bodies are being read already (max_unauthenticated_bodies); retry", cap(s.preAuth))
		}
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return http.StatusRequestTimeout, nil, fmt.Errorf("the body took over %s to arrive (body_timeout before authentication, read_timeout after)", s.bodyTimeout(authed))
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, nil, fmt.Errorf("body is over the limit of %d bytes (max_body_bytes)", max)
		}
		return http.StatusBadRequest, nil, fmt.Errorf("reading the body: %v", err)
	}
	if !authed {
		if err := s.auth.late(r, body); err != nil {
			return http.StatusUnauthorized, nil, err
		}
	}
	hook, err := ParseWebhook(body)
	if err != nil {
		return http.StatusBadRequest, nil, err
	}
	resp := &WebhookResponse{Alerts: []AlertResult{}}
	code := http.StatusOK
	for _, a := range hook.Alerts {
		res := s.route(hook, a)
		s.log.Info("alert", "alertname", res.Alertname, "fingerprint", res.Fingerprint, "outcome", res.Outcome, "route", res.Route, "run", res.Run, "reason", res.Reason)
		if res.Outcome == OutcomeRejected {
			code = http.StatusServiceUnavailable
		}
		resp.Alerts = append(resp.Alerts, res)
	}
	return code, resp, nil
}

// route decides what to do with one alert and, if it is new and routed,
// queues its run.
func (s *Server) route(hook *Webhook, a Alert) AlertResult {
	s.metrics.alertReceived()
	res := AlertResult{Fingerprint: a.Fingerprint, Alertname: a.Labels["alertname"], Status: a.Status}
	ignore := func(outcome, reason, metric string) AlertResult {
		res.Outcome, res.Reason = outcome, reason
		s.metrics.alertIgnored(metric)
		return res
	}
	if a.Status != AlertFiring {
		return ignore(OutcomeResolved, fmt.Sprintf("alert status is %q; only firing alerts start runs", a.Status), "resolved")
	}
	var rt *route
	for _, r := range s.routes {
		if r.matches(a.Labels) {
			rt = r
			break
		}
	}
	if rt == nil {
		return ignore(OutcomeIgnored, "no route matches the alert's labels", "no_route")
	}
	res.Route = rt.name
	params, err := rt.render(hook.data(a))
	if err != nil {
		return ignore(OutcomeError, err.Error(), "bad_params")
	}
	var set *SetTarget
	if rt.fanout != nil {
		if set, err = rt.fanout.target(rt.name, hook.data(a), params); err != nil {
			return ignore(OutcomeError, err.Error(), "bad_params")
		}
	}
	id, outcome, reason := s.admit(rt, a, params, set)
	res.Run, res.Outcome, res.Reason = id, outcome, reason
	if id != "" {
		res.URL = "/runs/" + id
	}
	switch outcome {
	case OutcomeDeduplicated:
		s.metrics.alertIgnored("deduplicated")
	case OutcomeRejected:
		s.metrics.alertIgnored("rejected")
	}
	return res
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) bodyTimeout(authed bool) time.Duration {
	if authed {
		return s.cfg.ReadTimeout
	}
	return s.cfg.BodyTimeout
}
