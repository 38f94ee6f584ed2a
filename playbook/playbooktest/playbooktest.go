// Package playbooktest runs a real playbook server on 127.0.0.1 for tests
// (unit tests of the server, and end-to-end tests against a cluster) and
// builds realistic Alertmanager payloads.
package playbooktest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
)

// Server is a playbook server serving on a loopback port until the test
// ends (or Stop).
type Server struct {
	*playbook.Server
	// URL is the server's base URL, e.g. http://127.0.0.1:34567.
	URL string
	// Token, if set, is sent as the bearer token by Post (and by Get
	// unless ReadToken is set).
	Token string
	// ReadToken, if set, is sent as the bearer token by Get.
	ReadToken string

	cancel context.CancelFunc
	done   chan error
}

// Config parses a playbooks.yaml given as text, written as
// dir/playbooks.yaml so that relative paths in it resolve against dir.
func Config(t testing.TB, dir, yaml string) *playbook.Config {
	t.Helper()
	path := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := playbook.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Start creates the server with playbook.New and serves it on
// 127.0.0.1:0; the store is a temporary directory unless opts or cfg name
// one. The server is shut down when the test ends.
func Start(t testing.TB, cfg *playbook.Config, opts playbook.Options) *Server {
	t.Helper()
	if opts.StoreDir == "" && cfg.Store == "" {
		opts.StoreDir = t.TempDir()
	}
	srv, err := playbook.New(cfg, opts)
	if err != nil {
		t.Fatalf("playbook.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Server: srv, URL: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop shuts the server down as SIGTERM would and waits until its runs
// are stored. It may be called more than once.
func (s *Server) Stop() error {
	s.cancel()
	err, ok := <-s.done
	if ok {
		close(s.done)
	}
	return err
}

// Post sends body to POST /alerts with the bearer token (if set) and the
// extra headers, and returns the status code and the response body.
func (s *Server) Post(t testing.TB, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/alerts", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /alerts: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Alerts posts hook and decodes the per-alert results; the status must
// be want.
func (s *Server) Alerts(t testing.TB, hook playbook.Webhook, want int) []playbook.AlertResult {
	t.Helper()
	body, _ := json.Marshal(hook)
	code, b := s.Post(t, body, nil)
	if code != want {
		t.Fatalf("POST /alerts: %d, want %d: %s", code, want, b)
	}
	var resp playbook.WebhookResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("POST /alerts: %v: %s", err, b)
	}
	return resp.Alerts
}

// Get fetches path with an Accept header and returns the status, the
// Content-Type and the body.
func (s *Server) Get(t testing.TB, path, accept string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if tok := cmp.Or(s.ReadToken, s.Token); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// Wait polls GET /runs/ID until the run has ended and returns its
// metadata.
func (s *Server) Wait(t testing.TB, id string, timeout time.Duration) *playbook.Meta {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, _, b := s.Get(t, "/runs/"+id+"?format=json", "")
		var d playbook.RunDetail
		if code == http.StatusOK && json.Unmarshal(b, &d) == nil && d.Run.Done() {
			return d.Run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end within %s: %d %s", id, timeout, code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KubePodNotReady returns the webhook Alertmanager sends for
// kube-prometheus' KubePodNotReady alert about namespace/pod, as a
// receiver named "kdiag" gets it.
func KubePodNotReady(namespace, pod string) playbook.Webhook {
	labels := map[string]string{
		"alertname": "KubePodNotReady", "namespace": namespace, "pod": pod,
		"severity": "warning", "prometheus": "monitoring/k8s", "job": "kube-state-metrics",
	}
	start := time.Now().Add(-15 * time.Minute).UTC().Truncate(time.Second)
	return playbook.Webhook{
		Version: "4", Status: playbook.AlertFiring, Receiver: "kdiag",
		GroupKey:     fmt.Sprintf(`{}/{severity="warning"}:{alertname="KubePodNotReady", namespace=%q}`, namespace),
		GroupLabels:  map[string]string{"alertname": "KubePodNotReady", "namespace": namespace},
		CommonLabels: labels,
		CommonAnnotations: map[string]string{
			"description": fmt.Sprintf("Pod %s/%s has been in a non-ready state for longer than 15 minutes.", namespace, pod),
			"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodnotready",
			"summary":     "Pod has been in a non-ready state for more than 15 minutes.",
		},
		ExternalURL: "http://alertmanager.monitoring.svc:9093",
		Alerts: []playbook.Alert{{
			Status: playbook.AlertFiring, Labels: labels,
			Annotations: map[string]string{
				"description": fmt.Sprintf("Pod %s/%s has been in a non-ready state for longer than 15 minutes.", namespace, pod),
				"summary":     "Pod has been in a non-ready state for more than 15 minutes.",
			},
			StartsAt:     start,
			EndsAt:       time.Time{},
			GeneratorURL: "http://prometheus.monitoring.svc:9090/graph?g0.expr=sum+by+%28namespace%2C+pod%29+%28kube_pod_status_phase%7Bphase%3D~%22Pending%7CUnknown%22%7D%29+%3E+0",
			Fingerprint:  fingerprint(namespace + "/" + pod),
		}},
	}
}

// fingerprint makes a stable 16-hex-digit fingerprint, as Alertmanager's.
func fingerprint(s string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x", h)
}

// KubeDeploymentReplicasMismatch returns the webhook Alertmanager sends
// for kube-prometheus' KubeDeploymentReplicasMismatch alert about
// namespace/deployment: a workload-level alert, naming no pod.
func KubeDeploymentReplicasMismatch(namespace, deployment string) playbook.Webhook {
	labels := map[string]string{
		"alertname": "KubeDeploymentReplicasMismatch", "namespace": namespace, "deployment": deployment,
		"severity": "warning", "prometheus": "monitoring/k8s", "job": "kube-state-metrics",
	}
	start := time.Now().Add(-15 * time.Minute).UTC().Truncate(time.Second)
	summary := "Deployment has not matched the expected number of replicas."
	return playbook.Webhook{
		Version: "4", Status: playbook.AlertFiring, Receiver: "kdiag",
		GroupKey:     fmt.Sprintf(`{}/{severity="warning"}:{alertname="KubeDeploymentReplicasMismatch", namespace=%q}`, namespace),
		GroupLabels:  map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": namespace},
		CommonLabels: labels, CommonAnnotations: map[string]string{"summary": summary},
		ExternalURL: "http://alertmanager.monitoring.svc:9093",
		Alerts: []playbook.Alert{{
			Status: playbook.AlertFiring, Labels: labels, Annotations: map[string]string{"summary": summary},
			StartsAt: start, Fingerprint: fingerprint(namespace + "/deployment/" + deployment),
		}},
	}
}
