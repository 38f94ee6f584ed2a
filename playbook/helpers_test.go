package playbook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const testToken = "s3cret-token"

// world is the directory the fake write built-ins change: set_flag writes
// flags/POD, drop_flag writes dropped/POD.
type world string

func (w world) has(parts ...string) bool {
	_, err := os.Stat(filepath.Join(append([]string{string(w)}, parts...)...))
	return err == nil
}

// specs are the standard built-ins plus two write built-ins on w:
// set_flag plans under dry-run, drop_flag cannot.
func specs(w world) []*engine.Spec {
	write := func(dir, pod, value string) error {
		if err := os.MkdirAll(filepath.Join(string(w), dir), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(string(w), dir, pod), []byte(value), 0o644)
	}
	setFlag := &engine.Spec{
		Name: "set_flag", Doc: "Sets a pod's flag (a file).", Effect: engine.Write, Plans: true,
		Params: []engine.Param{{Name: "pod", Type: "string", Required: true}, {Name: "value", Type: "string", Required: true}},
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			pod, v := c.Args.String("pod"), c.Args.String("value")
			patch, _ := json.Marshal(map[string]string{"value": v})
			m := engine.Mutation{Target: "flag " + pod, Patch: patch, Applied: c.DryRun == engine.DryRunNone}
			c.RecordMutation(m)
			if !m.Applied {
				return map[string]any{"applied": false, "planned": v}, nil
			}
			return map[string]any{"applied": true}, write("flags", pod, v)
		},
	}
	dropFlag := &engine.Spec{
		Name: "drop_flag", Doc: "Drops a pod's other flag.", Effect: engine.Write,
		Params: []engine.Param{{Name: "pod", Type: "string", Required: true}},
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			c.RecordMutation(engine.Mutation{Target: "flag " + c.Args.String("pod"), Applied: true})
			return map[string]any{"applied": true}, write("dropped", c.Args.String("pod"), "x")
		},
	}
	return append(std.Specs(), setFlag, dropFlag)
}

// testdata returns the absolute path of a test runbook.
func testdata(t testing.TB, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// config writes the token file and a config with the given settings and
// routes (YAML under routes:), and loads it. Unless the settings have an
// auth section, auth is the token file.
func config(t testing.TB, dir, settings, routes string) *playbook.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(settings, "auth:\n") {
		settings = "auth:\n  token_file: token\n" + settings
	}
	y := settings + "routes:\n" + routes
	return playbooktest.Config(t, dir, y)
}

// podRoute is a route for KubePodNotReady to pod-alert.star.
func podRoute(t testing.TB, extra string) string {
	return fmt.Sprintf(`  - name: pods
    match: {alertname: KubePodNotReady}
    runbook: %s
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
      summary: "{{ .Annotations.summary }}"
%s`, testdata(t, "pod-alert.star"), extra)
}

// slowRoute is a catch-all route to slow.star.
func slowRoute(t testing.TB, wait string) string {
	return fmt.Sprintf(`  - name: slow
    runbook: %s
    params:
      pod: "{{ .Labels.pod }}"
      wait: %q
`, testdata(t, "slow.star"), wait)
}

// start starts a server on cfg with the test built-ins on a fresh world.
func start(t testing.TB, cfg *playbook.Config) (*playbooktest.Server, world) {
	w := world(t.TempDir())
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(w)})
	s.Token = testToken
	return s, w
}

// podAlerts returns a KubePodNotReady webhook with one alert per pod.
func podAlerts(pods ...string) playbook.Webhook {
	h := playbooktest.KubePodNotReady("shop", pods[0])
	for _, pod := range pods[1:] {
		a := playbooktest.KubePodNotReady("shop", pod).Alerts[0]
		h.Alerts = append(h.Alerts, a)
	}
	return h
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of a sample of GET /metrics, parsed with the
// Prometheus text parser: NAME or NAME{label="value",...}, summed over the
// series whose labels include the given ones (histograms: NAME_bucket
// with le, NAME_sum, NAME_count).
func metric(t testing.TB, s *playbooktest.Server, sample string) string {
	t.Helper()
	_, _, b := s.Get(t, "/metrics", "")
	families, err := parseMetrics(b)
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, b)
	}
	name, want := sample, map[string]string{}
	if i := strings.IndexByte(sample, '{'); i >= 0 {
		name = sample[:i]
		for _, m := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(sample[i:], -1) {
			want[m[1]] = m[2]
		}
	}
	base, part := name, ""
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && families[b] != nil && families[b].GetType() == dto.MetricType_HISTOGRAM {
			base, part = b, suffix
		}
	}
	f := families[base]
	if f == nil {
		t.Fatalf("no metric %s in /metrics:\n%s", base, b)
	}
	le, hasLE := want["le"]
	delete(want, "le")
	total, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		switch {
		case part == "_sum":
			total += m.GetHistogram().GetSampleSum()
		case part == "_count", part == "_bucket" && hasLE && le == "+Inf":
			total += float64(m.GetHistogram().GetSampleCount())
		case part == "_bucket":
			for _, bk := range m.GetHistogram().GetBucket() {
				if strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64) == le {
					total += float64(bk.GetCumulativeCount())
				}
			}
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		}
		found = true
	}
	if !found && len(want) > 0 && f.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("no sample %s in /metrics:\n%s", sample, b)
	}
	return strconv.FormatFloat(total, 'g', -1, 64)
}

// parseMetrics parses the Prometheus text exposition format.
func parseMetrics(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// decodeResults decodes the body of a POST /alerts response.
func decodeResults(t testing.TB, b []byte) []playbook.AlertResult {
	t.Helper()
	var resp playbook.WebhookResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return resp.Alerts
}
