package playbook_test

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricsExposition parses GET /metrics with the Prometheus text
// parser: kdiag's build info, the Go runtime's and the process's
// collectors, and runs counted and timed by route and runbook.
func TestMetricsExposition(t *testing.T) {
	w := world(t.TempDir())
	s := playbooktest.Start(t, config(t, t.TempDir(), "", podRoute(t, "")), playbook.Options{Specs: specs(w), Version: "v9.8.7"})
	s.Token = testToken
	res := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res[0])
	}
	s.Wait(t, res[0].Run, 10*time.Second)

	code, ctype, b := s.Get(t, "/metrics", "")
	if code != 200 || ctype != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" && ctype != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /metrics: %d %s", code, ctype)
	}
	families, err := parseMetrics(b)
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v\n%s", err, b)
	}
	labels := func(m *dto.Metric) map[string]string {
		out := map[string]string{}
		for _, l := range m.GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	one := func(name string, typ dto.MetricType) *dto.MetricFamily {
		t.Helper()
		f := families[name]
		if f == nil || f.GetType() != typ || len(f.GetMetric()) == 0 {
			t.Fatalf("no %s %s in /metrics", typ, name)
		}
		return f
	}
	bi := one("kdiag_build_info", dto.MetricType_GAUGE).GetMetric()[0]
	if l := labels(bi); l["version"] != "v9.8.7" || l["goversion"] != runtime.Version() || bi.GetGauge().GetValue() != 1 {
		t.Errorf("kdiag_build_info %v = %v", l, bi.GetGauge().GetValue())
	}
	if g := one("go_goroutines", dto.MetricType_GAUGE).GetMetric()[0].GetGauge().GetValue(); g < 1 {
		t.Errorf("go_goroutines = %v", g)
	}
	one("go_memstats_heap_alloc_bytes", dto.MetricType_GAUGE)
	if rss := one("process_resident_memory_bytes", dto.MetricType_GAUGE).GetMetric()[0].GetGauge().GetValue(); rss < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v", rss)
	}
	one("process_cpu_seconds_total", dto.MetricType_COUNTER)

	found := false
	for _, m := range one("kdiag_runs_total", dto.MetricType_COUNTER).GetMetric() {
		l := labels(m)
		if l["route"] == "pods" && l["runbook"] == "pod-alert" && l["status"] == playbook.StatusOK {
			found = m.GetCounter().GetValue() == 1
		}
	}
	if !found {
		t.Errorf(`kdiag_runs_total{route="pods",runbook="pod-alert",status="ok"} is not 1:\n%s`, b)
	}
	h := one("kdiag_run_duration_seconds", dto.MetricType_HISTOGRAM).GetMetric()[0]
	if l := labels(h); l["route"] != "pods" || l["runbook"] != "pod-alert" || h.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("kdiag_run_duration_seconds %v: %d samples", l, h.GetHistogram().GetSampleCount())
	}
}
