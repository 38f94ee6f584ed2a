package alerts

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// pipeline is a running test/alerts/pipeline.sh: Prometheus,
// Alertmanager and kdiag serve on free loopback ports, state in a
// temporary directory, covering only the namespaces of nsRE.
type pipeline struct {
	script, state          string
	env                    []string
	prom, am, serve, token string
	client                 *http.Client
}

// startPipeline runs `pipeline.sh up` (building Prometheus and
// Alertmanager into the cache on first use) and stops it when the test
// ends, printing the components' logs if the test failed.
func startPipeline(t *testing.T, root, kdiag, nsRE, fixAfter string) *pipeline {
	t.Helper()
	p := &pipeline{script: filepath.Join(root, "test/alerts/pipeline.sh"), state: t.TempDir(),
		client: &http.Client{Timeout: 10 * time.Second}}
	addrs := freeAddrs(t, 3)
	p.prom, p.am, p.serve = "http://"+addrs[0], "http://"+addrs[1], "http://"+addrs[2]
	p.env = append(os.Environ(), "KDIAG="+kdiag, "KDIAG_ALERTS_STATE="+p.state, "KDIAG_ALERTS_NAMESPACES="+nsRE,
		"KDIAG_ALERTS_PROMETHEUS="+addrs[0], "KDIAG_ALERTS_ALERTMANAGER="+addrs[1], "KDIAG_ALERTS_SERVE="+addrs[2],
		"KDIAG_ALERTS_FIX_AFTER="+fixAfter, "KDIAG_ALERTS_REPEAT=10s")
	t.Cleanup(func() {
		if out, err := p.run("down"); err != nil {
			t.Errorf("pipeline.sh down: %v\n%s", err, out)
		}
		if t.Failed() {
			for _, c := range []string{"prometheus", "alertmanager", "serve"} {
				b, _ := os.ReadFile(filepath.Join(p.state, "logs", c+".log"))
				t.Logf("== %s.log (last 4 KiB)\n%s", c, tail(b, 4096))
			}
		}
	})
	start := time.Now()
	if out, err := p.run("up"); err != nil {
		t.Fatalf("pipeline.sh up: %v\n%s", err, out)
	}
	t.Logf("pipeline up in %s", time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(filepath.Join(p.state, "token"))
	if err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(string(b))
	return p
}

func (p *pipeline) run(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{p.script}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// get fetches url (with the serve token if auth) and decodes its JSON into v.
func (p *pipeline) get(t *testing.T, url string, auth bool, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, tail(b, 512))
	}
}

// runs returns kdiag serve's runs, oldest first.
func (p *pipeline) runs(t *testing.T) []playbook.RunSummary {
	t.Helper()
	var rs []playbook.RunSummary
	p.get(t, p.serve+"/runs", true, &rs)
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return rs
}

// meta returns a run's metadata.
func (p *pipeline) meta(t *testing.T, id string) *playbook.Meta {
	t.Helper()
	var d playbook.RunDetail
	p.get(t, p.serve+"/runs/"+id+"?format=json", true, &d)
	return d.Run
}

// promAlert is an alert as Prometheus's /api/v1/alerts lists it.
type promAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// promAlerts returns Prometheus's pending and firing alerts of namespace ns.
func (p *pipeline) promAlerts(t *testing.T, ns string) []promAlert {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	p.get(t, p.prom+"/api/v1/alerts", false, &r)
	var out []promAlert
	for _, a := range r.Data.Alerts {
		if a.Labels["namespace"] == ns {
			out = append(out, a)
		}
	}
	return out
}

// amAlerts returns the alertnames of Alertmanager's active alerts of namespace ns.
func (p *pipeline) amAlerts(t *testing.T, ns string) []string {
	t.Helper()
	var r []struct {
		Labels map[string]string `json:"labels"`
	}
	p.get(t, p.am+"/api/v2/alerts?active=true&silenced=false&inhibited=false", false, &r)
	var out []string
	for _, a := range r {
		if a.Labels["namespace"] == ns {
			out = append(out, a.Labels["alertname"])
		}
	}
	return out
}

// metric returns the sum of kdiag serve's samples of family name whose
// labels include want (name=value pairs).
func (p *pipeline) metric(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	resp, err := p.client.Get(p.serve + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	var sum float64
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m, want) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		ok := false
		for _, l := range m.GetLabel() {
			ok = ok || (l.GetName() == want[i] && l.GetValue() == want[i+1])
		}
		if !ok {
			return false
		}
	}
	return true
}

// waitFor polls cond every 500ms until it returns true, failing the test
// with what after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Now()
}

// freeAddrs returns n loopback addresses with ports free right now.
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// namespace creates a namespace alerts-<random>, deleted when the test ends.
func namespace(t *testing.T, env *harness.Env) string {
	b := make([]byte, 3)
	rand.Read(b)
	ns := "alerts-" + hex.EncodeToString(b)
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { env.RunKubectl("delete", "namespace", ns, "--wait=false") })
	return ns
}

// build builds kdiag and the seed's broken app into a temporary directory.
func build(t *testing.T, root string) (kdiag, app string) {
	t.Helper()
	dir := t.TempDir()
	for pkg, out := range map[string]string{"./cmd/kdiag": "kdiag", "./examples/broken-pod/app": "broken-app"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return filepath.Join(dir, "kdiag"), filepath.Join(dir, "broken-app")
}

// applySeed applies the seed incident (examples/broken-pod) in namespace ns.
func applySeed(t *testing.T, env *harness.Env, root, ns string) {
	b, err := os.ReadFile(filepath.Join(root, "examples/broken-pod/manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.yaml")
	os.WriteFile(p, bytes.ReplaceAll(b, []byte("namespace: default"), []byte("namespace: "+ns)), 0o644)
	env.Kubectl(t, "apply", "-f", p)
}

// podState returns the pod's phase, Ready condition and containers' started flags.
func podState(env *harness.Env, ns, pod string) string {
	out, _, _ := env.RunKubectl("get", "pod", pod, "-n", ns, "-o",
		`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[*].started}`)
	return strings.TrimSpace(out)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// since formats t1 as seconds after t0, for the timeline log.
func since(t0, t1 time.Time) string { return fmt.Sprintf("+%.1fs", t1.Sub(t0).Seconds()) }
