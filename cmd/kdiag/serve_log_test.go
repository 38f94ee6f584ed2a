package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// TestServeJSONLog runs kdiag serve --log-format json: every line it
// writes to stderr is one JSON object with time, level and msg, from the
// listening address to the run's end.
func TestServeJSONLog(t *testing.T) {
	bin, err := exec.LookPath("kdiag") // the test binary, installed by testscript.Main
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "quick.star"), []byte(`runbook(name = "quick", summary = "Ends.", params = [param("pod"), param("namespace")])
def main(p):
    verdict("looked at " + p.pod)
`), 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "playbooks.yaml"), []byte(`auth:
  token_file: token
store: runs
routes:
  - name: not-ready
    match: {alertname: KubePodNotReady}
    runbook: quick.star
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
`), 0o644)
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "playbooks.yaml"), "--listen", "127.0.0.1:0", "--log-format", "json", "--executor", "local")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "no-such-kubeconfig"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	type record struct {
		Time, Level, Msg string
		Run, Status      string
	}
	var records []record
	next := func() record {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("kdiag serve ended its log early; records so far: %+v", records)
		}
		var r record
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil || r.Time == "" || r.Level == "" || r.Msg == "" {
			t.Fatalf("not a JSON log record (%v): %s", err, lines.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			t.Errorf("time %q: %v", r.Time, err)
		}
		records = append(records, r)
		return r
	}
	url := strings.TrimPrefix(next().Msg, "kdiag serve: listening on ")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first record: %+v, want where it listens", records[0])
	}
	body, _ := json.Marshal(playbooktest.KubePodNotReady("shop", "web-0"))
	req, _ := http.NewRequest(http.MethodPost, url+"/alerts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for r := next(); r.Msg != "run ended"; r = next() {
	}
	if last := records[len(records)-1]; last.Status != "ok" || last.Run == "" {
		t.Errorf("run ended record: %+v", last)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for lines.Scan() {
		if !json.Valid(lines.Bytes()) {
			t.Errorf("not JSON: %s", lines.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("kdiag serve after SIGTERM: %v", err)
	}
}
