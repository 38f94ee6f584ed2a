package playbook_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
)

// TestConcurrencyLimit sends five alerts for a runbook that waits 300ms
// to a server that runs two at once: never more than two run at the same
// time (from the transcripts' own clocks, and the in-flight gauge), and
// two do run together.
func TestConcurrencyLimit(t *testing.T) {
	s, _ := start(t, config(t, t.TempDir(), "concurrency: 2\n", slowRoute(t, "300ms")))
	res := s.Alerts(t, podAlerts("a", "b", "c", "d", "e"), http.StatusOK)
	maxGauge := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			n, _ := strconv.Atoi(metric(t, s, "kdiag_runs_in_flight"))
			q, _ := strconv.Atoi(metric(t, s, "kdiag_runs_queued"))
			maxGauge = max(maxGauge, n)
			if n == 0 && q == 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	type span struct{ start, end time.Time }
	var spans []span
	for _, r := range res {
		if r.Outcome != playbook.OutcomeStarted {
			t.Fatalf("%+v", r)
		}
		m := s.Wait(t, r.Run, 20*time.Second)
		tr, err := transcript.ReadFile(s.Store().TranscriptPath(m.ID))
		if err != nil || m.Status != playbook.StatusOK {
			t.Fatalf("run %+v: %v", m, err)
		}
		start := *tr.Header.Start
		spans = append(spans, span{start, start.Add(time.Duration(tr.Footer.DurationMS * float64(time.Millisecond)))})
	}
	<-done
	most := 0
	for _, a := range spans {
		n := 0
		for _, b := range spans {
			if !b.start.After(a.start) && b.end.After(a.start) {
				n++
			}
		}
		most = max(most, n)
	}
	if most != 2 {
		t.Errorf("at most %d runs overlapped, want exactly 2 (concurrency 2): %v", most, spans)
	}
	if maxGauge > 2 || maxGauge == 0 {
		t.Errorf("kdiag_runs_in_flight peaked at %d, want 1..2", maxGauge)
	}
	if got := metric(t, s, `kdiag_runs_total{status="ok"}`); got != "5" {
		t.Errorf("runs ok = %s, want 5", got)
	}
}

// TestQueueFullAndShutdown fills the one slot and the one queue place:
// the third alert is rejected with 503 and Retry-After (Alertmanager
// retries 5xx, not 429). Shutting the server down then cancels both
// runs: the running one's transcript ends with status cancelled, the
// queued one never started.
func TestQueueFullAndShutdown(t *testing.T) {
	s, _ := start(t, config(t, t.TempDir(), "concurrency: 1\nqueue: 1\n", slowRoute(t, "60s")))
	code, b := s.Post(t, mustJSON(podAlerts("a", "b", "c")), nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), `"outcome": "rejected"`) || !strings.Contains(string(b), "queued (concurrency 1, queue 1)") {
		t.Fatalf("POST: %d %s, want 503 with one rejected alert", code, b)
	}
	res := decodeResults(t, b)
	if res[0].Outcome != playbook.OutcomeStarted || res[1].Outcome != playbook.OutcomeStarted || res[2].Run != "" {
		t.Fatalf("%+v", res)
	}
	// Either of the two may get the slot first.
	var running, queued string
	waitFor(t, "the wait step", 10*time.Second, func() bool {
		for i, id := range []string{res[0].Run, res[1].Run} {
			b, _ := os.ReadFile(s.Store().TranscriptPath(id))
			if strings.Contains(string(b), `"step":"wait"`) {
				running, queued = id, res[1-i].Run
				return true
			}
		}
		return false
	})
	tp := s.Store().TranscriptPath(running)
	if got := metric(t, s, "kdiag_runs_queued"); got != "1" {
		t.Errorf("queued gauge %s, want 1", got)
	}
	// A queued run has a page and metadata but no report or transcript yet.
	if _, _, b := s.Get(t, "/runs?status=queued", ""); strings.Count(string(b), `"id"`) != 1 || !strings.Contains(string(b), queued) {
		t.Errorf("GET /runs?status=queued:\n%s", b)
	}
	if code, _, b := s.Get(t, "/runs/"+queued, ""); code != 200 || !strings.Contains(string(b), `<span class="status-queued">queued</span>`) || !strings.Contains(string(b), "(no verdict)") {
		t.Errorf("page of the queued run: %d\n%s", code, b)
	}
	if _, _, b := s.Get(t, "/runs/"+queued, "application/json"); !strings.Contains(string(b), `"report": null`) {
		t.Errorf("json of the queued run:\n%s", b)
	}
	for _, p := range []string{"/runs/" + queued + "?format=markdown", "/runs/" + queued + "/transcript"} {
		if code, _, _ := s.Get(t, p, ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code, _, _ := s.Get(t, "/runs?limit=zero", ""); code != http.StatusBadRequest {
		t.Errorf("GET /runs?limit=zero: %d, want 400", code)
	}
	if _, _, b := s.Get(t, "/runs?limit=1", ""); strings.Count(string(b), `"id"`) != 1 {
		t.Errorf("GET /runs?limit=1:\n%s", b)
	}
	t0 := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatalf("transcript: %v", err)
	}
	if tr.Footer.Status != transcript.StatusCancelled || !strings.Contains(tr.Footer.Message, playbook.ErrShutdown.Error()) {
		t.Errorf("footer %+v, want cancelled because the server is shutting down", tr.Footer)
	}
	for id, want := range map[string]string{running: "run cancelled: the server is shutting down", queued: "cancelled while queued"} {
		m, err := s.Store().Load(id)
		if err != nil || m.Status != playbook.StatusCancelled || !strings.Contains(m.Message, want) || m.Ended == nil {
			t.Errorf("run %s: %+v %v, want cancelled: %s", id, m, err, want)
		}
	}
	if _, err := os.Stat(s.Store().TranscriptPath(queued)); !os.IsNotExist(err) {
		t.Errorf("the queued run has a transcript: %v", err)
	}
}

// TestRouteTimeout stops a run at its route's timeout: failed, saying so.
func TestRouteTimeout(t *testing.T) {
	s, _ := start(t, config(t, t.TempDir(), "", slowRoute(t, "60s")+"    timeout: 300ms\n"))
	res := s.Alerts(t, podAlerts("a"), http.StatusOK)
	m := s.Wait(t, res[0].Run, 10*time.Second)
	if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "run timed out") {
		t.Fatalf("run %+v, want failed: timed out", m)
	}
	tr, err := transcript.ReadFile(s.Store().TranscriptPath(m.ID))
	if err != nil || tr.Footer.Status != transcript.StatusFailed {
		t.Fatalf("transcript: %v %+v", err, tr)
	}
}

// TestRestartRecovers starts a second server on the first one's store:
// the finished run is listed and still deduplicates its alert; a run the
// first server left running is marked interrupted.
func TestRestartRecovers(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, "store: store\n", podRoute(t, ""))
	s1, _ := start(t, cfg)
	res := s1.Alerts(t, podAlerts("web-0"), http.StatusOK)
	s1.Wait(t, res[0].Run, 10*time.Second)
	s1.Stop()
	left := &playbook.Meta{ID: "20200101T000000Z-0000beef", Status: playbook.StatusRunning, Route: "pods",
		Alert: playbook.Alert{Fingerprint: "00000000000000ff", Labels: map[string]string{"alertname": "KubePodNotReady"}}}
	if err := s1.Store().Save(left); err != nil {
		t.Fatal(err)
	}

	s2, _ := start(t, cfg)
	if _, _, b := s2.Get(t, "/runs", ""); !strings.Contains(string(b), res[0].Run) || !strings.Contains(string(b), `"status": "interrupted"`) {
		t.Fatalf("runs after restart:\n%s", b)
	}
	again := s2.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeDeduplicated || again[0].Run != res[0].Run {
		t.Fatalf("after restart: %+v, want deduplicated by %s", again[0], res[0].Run)
	}
	h := podAlerts("web-0")
	h.Alerts[0].Fingerprint = left.Alert.Fingerprint
	if r := s2.Alerts(t, h, http.StatusOK); r[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert of the interrupted run: %+v, want started", r[0])
	}
}
