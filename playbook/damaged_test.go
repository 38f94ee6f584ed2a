package playbook_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// TestDamagedRunsAtStartup starts a server on a store holding a running
// run whose transcript header was cut short (as by a full disk), a
// finished run whose transcript is garbage, and a run whose run.json is
// cut short: the server comes up, marks the two readable runs damaged,
// skips the third, and serves every page of them without panicking.
func TestDamagedRunsAtStartup(t *testing.T) {
	store := t.TempDir()
	put := func(id, runJSON, tr string) {
		dir := filepath.Join(store, "runs", id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "run.json"), []byte(runJSON), 0o600)
		if tr != "" {
			os.WriteFile(filepath.Join(dir, "transcript.jsonl"), []byte(tr), 0o600)
		}
	}
	meta := func(id, status string) string {
		b, _ := json.Marshal(playbook.Meta{ID: id, Status: status, Route: "pods", Received: time.Now()})
		return string(b)
	}
	const cut, garbage, badMeta = "20260101T000000Z-0000000a", "20260101T000001Z-0000000b", "20260101T000002Z-0000000c"
	put(cut, meta(cut, playbook.StatusRunning), `{"type":"header","version":1,"runbook":"x.st`)
	put(garbage, meta(garbage, playbook.StatusOK), `{"type":"header","version":1}`+"\n"+`{"type":"call","seq":1}`+"\n")
	put(badMeta, `{"id":"`+badMeta+`","sta`, "")

	cfg := config(t, t.TempDir(), "", podRoute(t, ""))
	s := playbooktestStart(t, cfg, store)
	for _, id := range []string{cut, garbage} {
		code, _, b := s.Get(t, "/runs/"+id+"?format=json", "")
		if code != http.StatusOK {
			t.Fatalf("GET run %s: %d %s", id, code, b)
		}
		var d playbook.RunDetail
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(d.Run.Damaged, "corrupt transcript") || d.Report != nil {
			t.Errorf("run %s: damaged=%q report=%v, want it marked damaged and no report", id, d.Run.Damaged, d.Report)
		}
		for _, f := range []string{"", "?format=text", "?format=markdown"} {
			if code, _, b := s.Get(t, "/runs/"+id+f, ""); code != http.StatusOK && code != http.StatusNotFound {
				t.Errorf("GET run %s%s: %d %s", id, f, code, b)
			}
		}
	}
	if m, _ := s.Store().Load(cut); m.Status != playbook.StatusInterrupted || m.Damaged == "" {
		t.Errorf("stored run.json of the cut run: %+v", m)
	}
	if code, _, _ := s.Get(t, "/runs/"+badMeta, ""); code != http.StatusNotFound {
		t.Errorf("the run with a corrupt run.json is served (%d), want it skipped", code)
	}
}

// playbooktestStart starts a server over an existing store directory.
func playbooktestStart(t *testing.T, cfg *playbook.Config, store string) *playbooktest.Server {
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: store})
	s.Token = testToken
	return s
}
