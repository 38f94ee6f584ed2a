package playbook_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
)

// TestAlertRunsRunbook posts a KubePodNotReady webhook to a real server:
// the alert starts a run of the routed runbook with params rendered from
// the alert, stored with its transcript, reports and metadata, and served
// as a list, an HTML page, JSON and the transcript itself.
func TestAlertRunsRunbook(t *testing.T) {
	dir := t.TempDir()
	s, _ := start(t, config(t, dir, "", podRoute(t, "")))
	res := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if len(res) != 1 || res[0].Outcome != playbook.OutcomeStarted || res[0].Route != "pods" || res[0].Run == "" {
		t.Fatalf("results %+v, want one started run on route pods", res)
	}
	id := res[0].Run
	m := s.Wait(t, id, 10*time.Second)
	if m.Status != playbook.StatusOK || m.Verdict != "pod shop/web-0 looked at" || m.Findings != 1 {
		t.Fatalf("run %+v: want ok, the verdict and one finding", m)
	}

	code, _, b := s.Get(t, "/runs", "")
	var list []playbook.RunSummary
	if err := json.Unmarshal(b, &list); code != 200 || err != nil || len(list) != 1 || list[0].ID != id ||
		list[0].Alert["alertname"] != "KubePodNotReady" || list[0].Runbook != "pod-alert" || list[0].Verdict == "" {
		t.Fatalf("GET /runs: %d %v %s", code, err, b)
	}

	code, ctype, b := s.Get(t, "/runs/"+id, "text/html")
	if code != 200 || !strings.HasPrefix(ctype, "text/html") || !bytes.Contains(b, []byte("pod shop/web-0 looked at")) ||
		!bytes.Contains(b, []byte("pod shop/web-0 is not ready")) {
		t.Fatalf("GET /runs/%s (html): %d %s\n%s", id, code, ctype, b)
	}

	for _, q := range []struct{ path, accept string }{{"/runs/" + id, "application/json"}, {"/runs/" + id + "?format=json", ""}} {
		_, ctype, b = s.Get(t, q.path, q.accept)
		var d playbook.RunDetail
		if err := json.Unmarshal(b, &d); err != nil || ctype != "application/json" || d.Report == nil {
			t.Fatalf("GET %s (json): %v %s\n%s", q.path, err, ctype, b)
		}
		if len(d.Report.Findings) != 1 || d.Report.Findings[0].Summary != "pod shop/web-0 is not ready" ||
			!strings.Contains(string(d.Report.Findings[0].Evidence), "non-ready state for more than 15 minutes") {
			t.Fatalf("findings %+v", d.Report.Findings)
		}
		if d.Run.Params["pod"] != "web-0" || d.Run.Policy.Mutations != "never" {
			t.Fatalf("run %+v", d.Run)
		}
	}

	code, ctype, b = s.Get(t, "/runs/"+id+"/transcript", "")
	if code != 200 || ctype != "application/x-ndjson" {
		t.Fatalf("GET transcript: %d %s", code, ctype)
	}
	tr, err := transcript.Read("transcript", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("transcript: %v", err)
	}
	h := tr.Header
	if h.Params["pod"] != "web-0" || h.Params["namespace"] != "shop" || h.Params["summary"] != "Pod has been in a non-ready state for more than 15 minutes." {
		t.Errorf("header params %v: want them rendered from the alert", h.Params)
	}
	if h.Labels["alertname"] != "KubePodNotReady" || h.Labels["route"] != "pods" || h.Labels["fingerprint"] != res[0].Fingerprint || h.Labels["run"] != id {
		t.Errorf("header labels %v", h.Labels)
	}
	if tr.Footer.Status != transcript.StatusOK {
		t.Errorf("footer %+v", tr.Footer)
	}

	for _, f := range []string{"run.json", "transcript.jsonl", "report.txt", "report.md", "report.json"} {
		b, err := os.ReadFile(filepath.Join(s.Store().Dir(id), f))
		if err != nil || len(b) == 0 {
			t.Errorf("store: %s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(s.Store().Dir(id), "report.md"))
	if !bytes.Contains(md, []byte("## Verdict\n\npod shop/web-0 looked at")) {
		t.Errorf("report.md:\n%s", md)
	}
	if code, _, b := s.Get(t, "/runs/"+id+"?format=markdown", ""); code != 200 || !bytes.Equal(b, md) {
		t.Errorf("GET ?format=markdown: %d, differs from report.md:\n%s", code, b)
	}
	// The run page shows the same view as kdiag report -o html.
	view, err := report.HTMLView(report.Build(tr))
	if err != nil {
		t.Fatal(err)
	}
	if code, ctype, b := s.Get(t, "/runs/"+id, ""); code != 200 || ctype != "text/html; charset=utf-8" || !bytes.Contains(b, []byte(view)) || !bytes.Contains(b, []byte("<h2>Timeline</h2>")) {
		t.Errorf("GET /runs/%s: %d %s, not the report's HTML view:\n%s", id, code, ctype, b)
	}
	if code, _, _ := s.Get(t, "/runs/20200101T000000Z-00000000", ""); code != http.StatusNotFound {
		t.Errorf("unknown run: %d, want 404", code)
	}
	if code, _, _ := s.Get(t, "/runs/..%2f..%2fetc", ""); code != http.StatusNotFound {
		t.Errorf("bad run id: %d, want 404", code)
	}
	if code, _, b := s.Get(t, "/", ""); code != 200 || !bytes.Contains(b, []byte(id)) {
		t.Errorf("GET /: %d\n%s", code, b)
	}
	if code, _, b := s.Get(t, "/healthz", ""); code != 200 || string(b) != "ok\n" {
		t.Errorf("GET /healthz: %d %q", code, b)
	}
}

// TestMutationPolicies runs the same runbook, which calls two write
// built-ins, under each policy: never refuses both, dry-run plans the one
// that can plan and refuses the other, allow applies only the listed one.
func TestMutationPolicies(t *testing.T) {
	cases := []struct {
		policy       string
		set, dropped bool   // what the world holds afterwards
		states       string // the report's change states, in order
	}{
		{"mutations: never", false, false, "refused refused"},
		{"mutations: dry-run", false, false, "planned (dry run: client) refused"},
		{"mutations: allow\n    allow_builtins: [set_flag]", true, false, "applied refused"},
		{"mutations: allow\n    allow_builtins: [set_flag, drop_flag]", true, true, "applied applied"},
	}
	for _, c := range cases {
		t.Run(strings.Fields(c.policy)[1], func(t *testing.T) {
			route := podRoute(t, "      fix: \"true\"\n    "+c.policy+"\n")
			s, w := start(t, config(t, t.TempDir(), "", route))
			res := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
			m := s.Wait(t, res[0].Run, 10*time.Second)
			if m.Status != playbook.StatusOK {
				t.Fatalf("run %+v", m)
			}
			if w.has("flags", "web-0") != c.set || w.has("dropped", "web-0") != c.dropped {
				t.Errorf("world: set_flag applied %v (want %v), drop_flag applied %v (want %v)", w.has("flags", "web-0"), c.set, w.has("dropped", "web-0"), c.dropped)
			}
			_, _, b := s.Get(t, "/runs/"+m.ID+"?format=json", "")
			var d playbook.RunDetail
			json.Unmarshal(b, &d)
			var states []string
			for _, ch := range d.Report.Changes {
				states = append(states, ch.State)
			}
			if got := strings.Join(states, " "); got != c.states {
				t.Errorf("change states %q, want %q (%+v)", got, c.states, d.Report.Changes)
			}
			if c.policy == cases[2].policy && !strings.Contains(d.Report.Changes[1].Detail, `route "pods" allows only set_flag`) {
				t.Errorf("refusal detail %q", d.Report.Changes[1].Detail)
			}
		})
	}
}
