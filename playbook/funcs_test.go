package playbook_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
)

// TestAlertmanagerTemplateFunctions writes a route's params with
// Alertmanager's template functions and checks what the run received.
func TestAlertmanagerTemplateFunctions(t *testing.T) {
	route := fmt.Sprintf(`  - name: pods
    match: {alertname: KubePodNotReady}
    runbook: %s
    params:
      pod: '{{ reReplaceAll "-[0-9]+$" "" .Labels.pod | toUpper }}'
      namespace: '{{ .Labels.namespace | toLower }}'
      summary: '{{ title .Labels.severity }}: {{ join "," (stringSlice .Labels.alertname .Labels.job) }}; {{ if match "^Shop" .Labels.namespace }}matched{{ end }} {{ trimSpace "  x  " }} {{ humanizeDuration 3725 }} {{ safeHtml "<b>" }}'
`, testdata(t, "pod-alert.star"))
	s, _ := start(t, config(t, t.TempDir(), "", route))
	h := podAlerts("web-12")
	for _, a := range []*playbook.Alert{&h.Alerts[0]} {
		a.Labels["namespace"] = "Shop"
	}
	res := s.Alerts(t, h, http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res[0])
	}
	s.Wait(t, res[0].Run, 10*time.Second)
	_, _, b := s.Get(t, "/runs/"+res[0].Run+"/transcript", "")
	tr, err := transcript.Read("transcript", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"pod":       "WEB",
		"namespace": "shop",
		"summary":   "Warning: KubePodNotReady,kube-state-metrics; matched x 1h 2m 5s <b>",
	} {
		if got := tr.Header.Params[k]; got != want {
			t.Errorf("param %s = %q, want %q", k, got, want)
		}
	}

	// A bad regular expression is refused when the config is checked.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
	bad := "auth:\n  token_file: token\nroutes:\n" + strings.Replace(route, `"-[0-9]+$"`, `"(["`, 1)
	os.WriteFile(filepath.Join(dir, "playbooks.yaml"), []byte(bad), 0o644)
	if _, err := playbook.Load(filepath.Join(dir, "playbooks.yaml")); err == nil || !strings.Contains(err.Error(), "params.pod") || !strings.Contains(err.Error(), "missing closing ]") {
		t.Errorf("bad reReplaceAll pattern: %v, want the param and the regexp error", err)
	}
}
