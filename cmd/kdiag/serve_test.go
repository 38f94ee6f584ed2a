package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// TestServeSIGTERM runs a real kdiag serve process, posts a
// KubePodNotReady webhook whose route runs a runbook that waits, and
// sends SIGTERM mid-run: the process exits 0 promptly, and the run is
// stored as cancelled with a transcript whose footer says so.
func TestServeSIGTERM(t *testing.T) {
	bin, err := exec.LookPath("kdiag") // the test binary, installed by testscript.Main
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slow.star"), []byte(`runbook(name = "slow", summary = "Waits.", params = [param("pod"), param("namespace")])

def main(p):
    step("before", now)
    step("wait", sleep, "60s")
`), 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "playbooks.yaml"), []byte(`auth:
  token_file: token
store: runs
routes:
  - name: not-ready
    match: {alertname: KubePodNotReady}
    runbook: slow.star
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
`), 0o644)
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "playbooks.yaml"), "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "no-such-kubeconfig"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	var url string
	for url == "" && lines.Scan() {
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatal("kdiag serve never said where it listens")
	}
	var log bytes.Buffer
	go io.Copy(&log, stderr)

	body, _ := json.Marshal(playbooktest.KubePodNotReady("shop", "web-0"))
	req, _ := http.NewRequest(http.MethodPost, url+"/alerts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var wr playbook.WebhookResponse
	json.NewDecoder(resp.Body).Decode(&wr)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(wr.Alerts) != 1 || wr.Alerts[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("POST /alerts: %d %+v", resp.StatusCode, wr)
	}
	id := wr.Alerts[0].Run
	tp := filepath.Join(dir, "runs", "runs", id, "transcript.jsonl")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(tp)
		if strings.Contains(string(b), `"step":"wait"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached the wait step:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kdiag serve after SIGTERM: %v (want exit 0)", err)
	}
	if d := time.Since(sent); d > 5*time.Second {
		t.Errorf("took %s to stop after SIGTERM", d)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatalf("transcript: %v", err)
	}
	if tr.Footer.Status != transcript.StatusCancelled || tr.Header.Labels["alertname"] != "KubePodNotReady" || tr.Header.Params["pod"] != "web-0" {
		t.Fatalf("header %+v footer %+v, want the alert's labels and params, cancelled", tr.Header, tr.Footer)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "runs", "runs", id, "run.json"))
	var m playbook.Meta
	if err := json.Unmarshal(b, &m); err != nil || m.Status != playbook.StatusCancelled || !strings.Contains(m.Message, "the server is shutting down") {
		t.Fatalf("run.json: %v %s", err, b)
	}
	for _, f := range []string{"report.txt", "report.md", "report.json"} {
		if _, err := os.Stat(filepath.Join(dir, "runs", "runs", id, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
