package playbook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
)

// TestRoutingOutcomes sends alerts that start nothing: resolved ones,
// ones no route matches, ones whose params cannot be rendered, and
// repeats of an alert whose run is going or ended within the dedupe
// window. The metrics count each.
func TestRoutingOutcomes(t *testing.T) {
	routes := podRoute(t, "") + `  - name: disk
    match: {alertname: NodeDiskFull}
    match_re: {device: "sd[a-z]"}
    runbook: ` + testdata(t, "pod-alert.star") + `
    params:
      pod: "{{ .Labels.node }}"
`
	s, _ := start(t, config(t, t.TempDir(), "dedupe_window: 400ms\n", routes))

	h := podAlerts("web-0", "web-1")
	h.Alerts[1].Status = playbook.AlertResolved
	other := podAlerts("x").Alerts[0]
	other.Labels = map[string]string{"alertname": "Watchdog"}
	other.Fingerprint = "0000000000000001"
	disk := podAlerts("x").Alerts[0]
	disk.Labels = map[string]string{"alertname": "NodeDiskFull", "device": "nvme0n1", "node": "n1"} // match_re is anchored
	disk.Fingerprint = "0000000000000002"
	noNode := podAlerts("x").Alerts[0]
	noNode.Labels = map[string]string{"alertname": "NodeDiskFull", "device": "sdb"}
	noNode.Fingerprint = "0000000000000003"
	h.Alerts = append(h.Alerts, other, disk, noNode)
	res := s.Alerts(t, h, http.StatusOK)
	got := []string{}
	for _, r := range res {
		got = append(got, r.Outcome)
	}
	if want := "started resolved-ignored ignored ignored error"; strings.Join(got, " ") != want {
		t.Fatalf("outcomes %v, want %s (%+v)", got, want, res)
	}
	if !strings.Contains(res[4].Reason, `param pod: template: params.pod:1:10: executing "params.pod" at <.Labels.node>: map has no entry for key "node"`) {
		t.Errorf("bad params reason %q", res[4].Reason)
	}
	first := res[0].Run

	// The same alert while its run is going, and just after it ended.
	again := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeDeduplicated || again[0].Run != first {
		t.Fatalf("repeat: %+v, want deduplicated by %s", again[0], first)
	}
	s.Wait(t, first, 10*time.Second)
	again = s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeDeduplicated || !strings.Contains(again[0].Reason, "ended") {
		t.Fatalf("repeat after the end: %+v, want deduplicated", again[0])
	}
	// After the window, the alert starts a new run.
	time.Sleep(450 * time.Millisecond)
	again = s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeStarted || again[0].Run == first {
		t.Fatalf("repeat after the window: %+v, want a new run", again[0])
	}
	s.Wait(t, again[0].Run, 10*time.Second)

	if _, _, b := s.Get(t, "/runs", ""); strings.Count(string(b), `"id"`) != 2 {
		t.Fatalf("runs: want exactly 2:\n%s", b)
	}
	for sample, want := range map[string]string{
		"kdiag_alerts_received_total":                       "8",
		`kdiag_alerts_ignored_total{reason="resolved"}`:     "1",
		`kdiag_alerts_ignored_total{reason="no_route"}`:     "2",
		`kdiag_alerts_ignored_total{reason="bad_params"}`:   "1",
		`kdiag_alerts_ignored_total{reason="deduplicated"}`: "2",
		`kdiag_alerts_ignored_total{reason="rejected"}`:     "0",
		`kdiag_runs_total{status="ok"}`:                     "2",
		`kdiag_runs_total{status="failed"}`:                 "0",
		"kdiag_run_duration_seconds_count":                  "2",
		`kdiag_run_duration_seconds_bucket{le="1"}`:         "2",
		`kdiag_run_duration_seconds_bucket{le="+Inf"}`:      "2",
		"kdiag_runs_in_flight":                              "0",
		`kdiag_webhook_requests_total{code="200"}`:          "4",
	} {
		if got := metric(t, s, sample); got != want {
			t.Errorf("%s = %s, want %s", sample, got, want)
		}
	}
}

// TestChunkedBodyOverLimit sends a body with no Content-Length that
// grows past max_body_bytes: 413 once the limit is crossed.
func TestChunkedBodyOverLimit(t *testing.T) {
	s, _ := start(t, config(t, t.TempDir(), "max_body_bytes: 2048\n", podRoute(t, "")))
	body, _ := json.Marshal(podAlerts("web-0"))
	pr, pw := io.Pipe()
	go func() {
		pw.Write(body[:len(body)-1])
		pw.Write(bytes.Repeat([]byte(" "), 4096))
		pw.Write(body[len(body)-1:])
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/alerts", pr)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "over the limit of 2048 bytes") {
		t.Fatalf("%d %s, want 413", resp.StatusCode, b)
	}
	if code, _, _ := s.Get(t, "/alerts", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /alerts: %d, want 405", code)
	}
}
