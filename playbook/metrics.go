package playbook

import (
	"net/http"
	"runtime"
	"strconv"

	"github.com/kdiag/kdiag/engine/repos"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets are the upper bounds, in seconds, of the run duration
// histogram.
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800}

// metrics are the server's metrics, in a registry of the server's own
// (with kdiag's build info and the Go runtime's and process's collectors).
type metrics struct {
	registry       *prometheus.Registry
	received       prometheus.Counter
	ignored        *prometheus.CounterVec
	runs           *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	requests       *prometheus.CounterVec
	notifyFailures prometheus.Counter
	repoUpdates    *prometheus.CounterVec
	repoCommit     *prometheus.GaugeVec
	pods           *prometheus.CounterVec
}

// newMetrics registers the metrics; gauges reads the runs in flight and
// queued at scrape time.
func newMetrics(version string, gauges func() (inflight, queued int)) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "kdiag_alerts_received_total", Help: "Alerts received in webhooks, firing or resolved."}),
		ignored:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kdiag_alerts_ignored_total", Help: "Alerts that started no run, by reason."}, []string{"reason"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kdiag_runs_total", Help: "Runs ended, by route, runbook and status."},
			[]string{"route", "runbook", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kdiag_run_duration_seconds", Help: "How long runs took, from start to end, by route and runbook.",
			Buckets: durationBuckets}, []string{"route", "runbook"}),
		requests:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kdiag_webhook_requests_total", Help: "Webhook requests, by HTTP status code."}, []string{"code"}),
		notifyFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kdiag_notify_failures_total", Help: "Run notifications that could not be delivered."}),
		repoUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kdiag_repo_updates_total", Help: "Pinned repository updates, by repository and result (unchanged, updated, refused, failed)."},
			[]string{"repo", "result"}),
		pods: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kdiag_fanout_pod_runs_total", Help: "The runs of fan-out routes' pods, by route and status; the set itself counts in kdiag_runs_total."},
			[]string{"route", "status"}),
		repoCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kdiag_repo_commit_info", Help: "The commit each pinned repository's runs use; always 1."}, []string{"repo", "commit"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kdiag_build_info", Help: "kdiag's version and the Go version it was built with; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	buildInfo.Set(1)
	m.registry.MustRegister(m.received, m.ignored, m.runs, m.duration, m.requests, m.notifyFailures, m.repoUpdates, m.repoCommit, m.pods, buildInfo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kdiag_runs_in_flight", Help: "Runs executing now."},
			func() float64 { n, _ := gauges(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kdiag_runs_queued", Help: "Runs waiting for a free slot."},
			func() float64 { _, q := gauges(); return float64(q) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every reason is present from the start, so rate() works from the
	// first increment.
	for _, r := range []string{"resolved", "no_route", "deduplicated", "rejected", "bad_params"} {
		m.ignored.WithLabelValues(r)
	}
	return m
}

func (m *metrics) alertReceived()             { m.received.Inc() }
func (m *metrics) alertIgnored(reason string) { m.ignored.WithLabelValues(reason).Inc() }
func (m *metrics) request(code int)           { m.requests.WithLabelValues(strconv.Itoa(code)).Inc() }
func (m *metrics) notifyFailed()              { m.notifyFailures.Inc() }

// runStarted makes a route's series exist from its first run, so that
// rate() works from the first increment.
func (m *metrics) runStarted(route, runbook string) {
	for _, st := range []string{StatusOK, StatusFailed, StatusCancelled} {
		m.runs.WithLabelValues(route, runbook, st)
	}
}

// podEnded counts the run of one pod of a fan-out route's set.
func (m *metrics) podEnded(route, status string) { m.pods.WithLabelValues(route, status).Inc() }

// runEnded counts a run by route, runbook and status and, if it started,
// its duration.
func (m *metrics) runEnded(route, runbook, status string, seconds float64, started bool) {
	m.runStarted(route, runbook)
	m.runs.WithLabelValues(route, runbook, status).Inc()
	if started {
		m.duration.WithLabelValues(route, runbook).Observe(seconds)
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}}).ServeHTTP(w, r)
}

// slogPrinter logs promhttp's errors to the server's log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Error("metrics", "err", v) }

// addConnections exposes the connection cap's counts: open connections
// and those closed at the cap (rejected new ones, evicted idle ones).
func (m *metrics) addConnections(l *connLimiter) {
	refused := func(how string, pick func(rejected, evicted int64) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kdiag_connections_refused_total",
			Help: "Connections closed at the cap: rejected new ones, evicted idle ones.", ConstLabels: prometheus.Labels{"how": how}},
			func() float64 { _, r, e := l.counts(); return float64(pick(r, e)) })
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kdiag_connections_open", Help: "Open HTTP connections (max_connections caps them)."},
			func() float64 { o, _, _ := l.counts(); return float64(o) }),
		refused("rejected", func(r, _ int64) int64 { return r }),
		refused("evicted_idle", func(_, e int64) int64 { return e }),
	} {
		_ = m.registry.Register(c) // a second listener of the same server keeps the first's
	}
}

// repoUpdated counts one repository's update result.
func (m *metrics) repoUpdated(repo, result string) { m.repoUpdates.WithLabelValues(repo, result).Inc() }

// repoCommits sets kdiag_repo_commit_info to the lock's commits.
func (m *metrics) repoCommits(l *repos.Lock) {
	m.repoCommit.Reset()
	for _, e := range l.Repos {
		m.repoCommit.WithLabelValues(e.Name, e.Commit).Set(1)
	}
}
