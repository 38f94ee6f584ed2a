package playbook

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// durationBuckets are the upper bounds, in seconds, of the run duration
// histogram.
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800}

// metrics are the server's counters, written in the Prometheus text
// exposition format by hand.
type metrics struct {
	mu             sync.Mutex
	received       int
	ignored        map[string]int
	runs           map[string]int
	requests       map[string]int
	notifyFailures int
	buckets        []int // cumulative counts are computed when written
	durSum         float64
	durCount       int
}

func newMetrics() *metrics {
	m := &metrics{ignored: map[string]int{}, runs: map[string]int{}, requests: map[string]int{}, buckets: make([]int, len(durationBuckets))}
	// Every reason and status is present from the start, so rate() works
	// from the first increment.
	for _, r := range []string{"resolved", "no_route", "deduplicated", "rejected", "bad_params"} {
		m.ignored[r] = 0
	}
	for _, st := range []string{StatusOK, StatusFailed, StatusCancelled} {
		m.runs[st] = 0
	}
	return m
}

func (m *metrics) alertReceived() {
	m.mu.Lock()
	m.received++
	m.mu.Unlock()
}

func (m *metrics) alertIgnored(reason string) {
	m.mu.Lock()
	m.ignored[reason]++
	m.mu.Unlock()
}

func (m *metrics) request(code int) {
	m.mu.Lock()
	m.requests[strconv.Itoa(code)]++
	m.mu.Unlock()
}

func (m *metrics) notifyFailed() {
	m.mu.Lock()
	m.notifyFailures++
	m.mu.Unlock()
}

// runEnded counts a run by status and, if it started, its duration.
func (m *metrics) runEnded(status string, seconds float64, started bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[status]++
	if !started {
		return
	}
	for i, le := range durationBuckets {
		if seconds <= le {
			m.buckets[i]++
			break
		}
	}
	m.durSum += seconds
	m.durCount++
}

// write renders every metric; inflight and queued are read at scrape time.
func (m *metrics) write(w io.Writer, inflight, queued int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	head := func(name, typ, help string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ) }
	head("kdiag_alerts_received_total", "counter", "Alerts received in webhooks, firing or resolved.")
	fmt.Fprintf(w, "kdiag_alerts_received_total %d\n", m.received)
	head("kdiag_alerts_ignored_total", "counter", "Alerts that started no run, by reason.")
	for _, k := range sortedKeys(m.ignored) {
		fmt.Fprintf(w, "kdiag_alerts_ignored_total{reason=%q} %d\n", k, m.ignored[k])
	}
	head("kdiag_runs_total", "counter", "Runs ended, by status.")
	for _, k := range sortedKeys(m.runs) {
		fmt.Fprintf(w, "kdiag_runs_total{status=%q} %d\n", k, m.runs[k])
	}
	head("kdiag_runs_in_flight", "gauge", "Runs executing now.")
	fmt.Fprintf(w, "kdiag_runs_in_flight %d\n", inflight)
	head("kdiag_runs_queued", "gauge", "Runs waiting for a free slot.")
	fmt.Fprintf(w, "kdiag_runs_queued %d\n", queued)
	head("kdiag_run_duration_seconds", "histogram", "How long runs took, from start to end.")
	cum := 0
	for i, le := range durationBuckets {
		cum += m.buckets[i]
		fmt.Fprintf(w, "kdiag_run_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "kdiag_run_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.durCount)
	fmt.Fprintf(w, "kdiag_run_duration_seconds_sum %s\n", strconv.FormatFloat(m.durSum, 'g', -1, 64))
	fmt.Fprintf(w, "kdiag_run_duration_seconds_count %d\n", m.durCount)
	head("kdiag_webhook_requests_total", "counter", "Webhook requests, by HTTP status code.")
	for _, k := range sortedKeys(m.requests) {
		fmt.Fprintf(w, "kdiag_webhook_requests_total{code=%q} %d\n", k, m.requests[k])
	}
	head("kdiag_notify_failures_total", "counter", "Run notifications that could not be delivered.")
	fmt.Fprintf(w, "kdiag_notify_failures_total %d\n", m.notifyFailures)
}

func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	inflight, queued := s.gauges()
	s.metrics.write(w, inflight, queued)
	if s.conns != nil {
		open, rejected, evicted := s.conns.counts()
		fmt.Fprintf(w, "# HELP kdiag_connections_open Open HTTP connections (max_connections caps them).\n# TYPE kdiag_connections_open gauge\nkdiag_connections_open %d\n", open)
		fmt.Fprintf(w, "# HELP kdiag_connections_refused_total Connections closed at the cap: rejected new ones, evicted idle ones.\n# TYPE kdiag_connections_refused_total counter\n")
		fmt.Fprintf(w, "kdiag_connections_refused_total{how=\"rejected\"} %d\nkdiag_connections_refused_total{how=\"evicted_idle\"} %d\n", rejected, evicted)
	}
}
