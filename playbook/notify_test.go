package playbook_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
)

// TestNotify checks that the notify webhook receives each finished run
// with its id, alert, status, verdict and report URL, with its bearer
// token; a failing receiver is counted.
func TestNotify(t *testing.T) {
	got := make(chan playbook.Notification, 4)
	var auth string
	var fail atomic.Bool
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		var n playbook.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("notification: %v", err)
		}
		if fail.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		}
		got <- n
	}))
	defer recv.Close()
	t.Setenv("KDIAG_TEST_NOTIFY", "chat-token")
	settings := "external_url: https://kdiag.example.com/\nnotify:\n  url: " + recv.URL + "/hook\n  token_env: KDIAG_TEST_NOTIFY\n"
	s, _ := start(t, config(t, t.TempDir(), settings, podRoute(t, "")))
	res := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	var n playbook.Notification
	select {
	case n = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	if n.RunID != res[0].Run || n.Status != "ok" || n.Verdict != "pod shop/web-0 looked at" || n.Route != "pods" || n.Runbook != "pod-alert" ||
		n.Alert.Labels["pod"] != "web-0" || n.Alert.Fingerprint != res[0].Fingerprint || n.Findings != 1 ||
		n.ReportURL != "https://kdiag.example.com/runs/"+res[0].Run {
		t.Errorf("notification %+v", n)
	}
	if auth != "Bearer chat-token" {
		t.Errorf("Authorization %q", auth)
	}
	fail.Store(true)
	res = s.Alerts(t, podAlerts("web-1"), http.StatusOK)
	<-got
	s.Wait(t, res[0].Run, 10*time.Second)
	waitFor(t, "the failure to be counted", 5*time.Second, func() bool { return metric(t, s, "kdiag_notify_failures_total") == "1" })
}
