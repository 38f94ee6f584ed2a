package playbook_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// TestQueuedAlertResumedAfterCrash: with one slot, the second of two
// alerts is queued; its request is on disk before the 200. A copy of the
// store taken at that moment is what a server killed with -9 leaves
// behind: a server started on it marks the running run interrupted and
// runs the queued one to the end, with its real params.
func TestQueuedAlertResumedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, "concurrency: 1\nqueue: 2\n", slowRoute(t, "1s"))
	store1 := t.TempDir()
	s1 := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: store1})
	s1.Token = testToken
	res := s1.Alerts(t, podAlerts("a", "b"), http.StatusOK)
	for _, r := range res {
		if _, err := os.Stat(filepath.Join(s1.Store().Dir(r.Run), "request.json")); err != nil {
			t.Fatalf("run %s's request is not journaled when the 200 is sent: %v", r.Run, err)
		}
	}
	crash := filepath.Join(t.TempDir(), "store")
	if out, err := exec.Command("cp", "-a", store1, crash).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	s1.Stop()
	copied, _ := playbook.OpenStore(crash)
	var running, queued string
	for _, r := range res {
		m, err := copied.Load(r.Run)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Status {
		case playbook.StatusRunning:
			running = m.ID
		case playbook.StatusQueued:
			queued = m.ID
		}
	}
	if running == "" || queued == "" {
		t.Fatalf("at the crash, want one run running and one queued")
	}

	s2 := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: crash})
	s2.Token = testToken
	m := s2.Wait(t, queued, 20*time.Second)
	if m.Status != playbook.StatusOK || m.Verdict != "waited 1s for "+m.Params["pod"].(string) {
		t.Errorf("the queued run after the restart: %+v, want it run to the end", m)
	}
	if r, _ := s2.Store().Load(running); r.Status != playbook.StatusInterrupted {
		t.Errorf("the run in flight at the crash: %s, want interrupted", r.Status)
	}
	if _, err := os.Stat(filepath.Join(s2.Store().Dir(queued), "request.json")); err == nil {
		t.Error("request.json is left behind after the run ended")
	}
}
