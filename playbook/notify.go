package playbook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
)

// Notification is what the notify webhook receives when a run ends.
type Notification struct {
	RunID     string            `json:"run_id"`
	Status    string            `json:"status"`
	Verdict   string            `json:"verdict,omitempty"`
	Message   string            `json:"message,omitempty"`
	Route     string            `json:"route"`
	Runbook   string            `json:"runbook"`
	Alert     NotificationAlert `json:"alert"`
	Findings  int               `json:"findings"`
	Changes   int               `json:"changes"`
	ReportURL string            `json:"report_url"`
	// Set, for a fan-out route's run, is its pods grouped by verdict.
	Set *NotificationSet `json:"set,omitempty"`
}

// NotificationSet is a fan-out run's pods in a notification.
type NotificationSet struct {
	Target  string        `json:"target"`
	Matched int           `json:"matched"`
	LeftOut string        `json:"left_out,omitempty"`
	Groups  []fleet.Group `json:"groups"`
}

// NotificationAlert is the alert that started a notified run.
type NotificationAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt"`
}

// notifier posts a Notification for every finished run; nil does nothing.
type notifier struct {
	url     string
	token   string
	base    string
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger
	failed  func()
}

func newNotifier(c *Config, log *slog.Logger) (*notifier, error) {
	if c.Notify == nil {
		return nil, nil
	}
	tok, err := readSecret(c, "notify", "token", c.Notify.TokenFile, c.Notify.TokenEnv)
	if err != nil {
		return nil, err
	}
	return &notifier{url: c.Notify.URL, token: string(tok), base: strings.TrimSuffix(c.ExternalURL, "/"),
		timeout: c.Notify.Timeout, client: &http.Client{}, log: log}, nil
}

// send posts the notification of m, logging (and counting) a failure.
func (n *notifier) send(m *Meta) {
	if n == nil {
		return
	}
	if err := n.post(m); err != nil {
		n.log.Warn("notify", "run", m.ID, "url", n.url, "err", err)
		if n.failed != nil {
			n.failed()
		}
	}
}

func (n *notifier) post(m *Meta) error {
	note := Notification{
		RunID: m.ID, Status: m.Status, Verdict: m.Verdict, Message: m.Message, Route: m.Route, Runbook: m.RunbookName,
		Alert:    NotificationAlert{Fingerprint: m.Alert.Fingerprint, Labels: m.Alert.Labels, Annotations: m.Alert.Annotations, StartsAt: m.Alert.StartsAt},
		Findings: m.Findings, Changes: m.Changes, ReportURL: n.base + "/runs/" + m.ID,
	}
	if m.Set != nil {
		note.Set = &NotificationSet{Target: m.Set.Target.String(), Matched: m.Set.Matched, LeftOut: m.Set.LeftOut, Groups: m.Set.Groups}
	}
	body, err := json.Marshal(note)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", n.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
