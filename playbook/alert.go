package playbook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Webhook is Alertmanager's webhook payload, version 4.
type Webhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a webhook.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// The alert statuses Alertmanager sends.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// ParseWebhook decodes and checks a webhook body: JSON, version "4".
// Alerts without a fingerprint get one computed from their labels.
func ParseWebhook(body []byte) (*Webhook, error) {
	var w Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("bad alert payload: %v", err)
	}
	if w.Version != "4" {
		if w.Version == "" {
			return nil, errors.New(`bad alert payload: no "version"; kdiag reads Alertmanager's webhook payload version "4"`)
		}
		return nil, fmt.Errorf(`unsupported webhook payload version %q; kdiag reads Alertmanager's version "4"`, w.Version)
	}
	for i := range w.Alerts {
		a := &w.Alerts[i]
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		if a.Fingerprint == "" {
			a.Fingerprint = labelsFingerprint(a.Labels)
		}
	}
	return &w, nil
}

// labelsFingerprint identifies an alert by its label set when the sender
// gave no fingerprint.
func labelsFingerprint(labels map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// data is the template data of alert a of w.
func (w *Webhook) data(a Alert) TemplateData {
	return TemplateData{Alert: a, Receiver: w.Receiver, ExternalURL: w.ExternalURL,
		GroupLabels: w.GroupLabels, CommonLabels: w.CommonLabels, CommonAnnotations: w.CommonAnnotations}
}
