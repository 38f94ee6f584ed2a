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
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/repos"
	"github.com/kdiag/kdiag/engine/repos/repotest"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// syncBuffer is a bytes.Buffer safe to write from a goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServePinnedRepos runs a real kdiag serve process over a lock file
// pinning a real repository's branch: a route runs its runbook at the
// pinned commit; POST /repos/update moves the pin, the next run's
// transcript names the new commit, the lock file is rewritten and the
// log says what changed.
func TestServePinnedRepos(t *testing.T) {
	bin, err := exec.LookPath("kdiag")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	t.Setenv("KDIAG_CACHE_DIR", filepath.Join(root, "cache"))
	lock := filepath.Join(root, "kdiag.lock")
	team := repotest.New(t, root, "team")
	r1 := team.Commit(map[string]string{"team-check.star": "def main(p):\n    verdict(\"v1\")\n"}, "v1")
	if out, errOut, err := runKdiag("--lock", lock, "repo", "add", "team", team.URL()); err != nil {
		t.Fatalf("repo add: %v %s%s", err, out, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "playbooks.yaml"), []byte("auth: {token_file: token}\nstore: runs\nroutes:\n  - name: team\n    match: {alertname: KubePodNotReady}\n    runbook: team-check\n"), 0o644)
	cmd := exec.Command(bin, "serve", "--lock", lock, "--executor", "local", "--config", filepath.Join(dir, "playbooks.yaml"), "--listen", "127.0.0.1:0")
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
	var log syncBuffer
	go io.Copy(&log, stderr)

	post := func(path string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	run := func(pod string) *transcript.Transcript {
		t.Helper()
		body, _ := json.Marshal(playbooktest.KubePodNotReady("shop", pod))
		_, b := post("/alerts", body)
		var wr playbook.WebhookResponse
		if err := json.Unmarshal(b, &wr); err != nil || len(wr.Alerts) != 1 || wr.Alerts[0].Run == "" {
			t.Fatalf("POST /alerts: %s", b)
		}
		tp := filepath.Join(dir, "runs", "runs", wr.Alerts[0].Run, "run.json")
		deadline := time.Now().Add(30 * time.Second)
		for {
			var m playbook.Meta
			if b, err := os.ReadFile(tp); err == nil && json.Unmarshal(b, &m) == nil && m.Done() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s did not end; log:\n%s", wr.Alerts[0].Run, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		tr, err := transcript.ReadFile(filepath.Join(dir, "runs", "runs", wr.Alerts[0].Run, "transcript.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	if tr := run("a"); tr.Header.Files[0].Commit != r1 || tr.Footer.Status != transcript.StatusOK {
		t.Fatalf("first run: files %+v footer %+v", tr.Header.Files, tr.Footer)
	}
	r2 := team.Commit(map[string]string{"team-check.star": "def main(p):\n    verdict(\"v2\")\n"}, "v2")
	if code, b := post("/repos/update", nil); code != http.StatusOK || !strings.Contains(string(b), `"result": "updated"`) {
		t.Fatalf("POST /repos/update: %d %s", code, b)
	}
	if tr := run("b"); tr.Header.Files[0].Commit != r2 {
		t.Fatalf("run after the update: files %+v", tr.Header.Files)
	}
	l, err := repos.ReadLock(lock)
	if e, _ := l.Get("team"); err != nil || e.Commit != r2 {
		t.Fatalf("lock after the update: %v %+v", err, l)
	}
	if !strings.Contains(log.String(), "repository update") || !strings.Contains(log.String(), "result=updated") || !strings.Contains(log.String(), "to="+r2[:12]) {
		t.Fatalf("log:\n%s", log.String())
	}
}
