package playbook

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/repos"
	"github.com/kdiag/kdiag/engine/repos/repotest"
	"github.com/kdiag/kdiag/runbooks"
)

// TestRepoUpdateSchedule: the scheduled update (repo_update.every; here
// a short period, which the config does not allow) moves the branch pin
// of a real repository, so the server's loader names the new commit.
func TestRepoUpdateSchedule(t *testing.T) {
	root := t.TempDir()
	team := repotest.New(t, root, "team")
	team.Commit(map[string]string{"team-check.star": "def main(p):\n    verdict(\"v1\")\n"}, "v1")
	lock := &repos.Lock{Path: filepath.Join(root, "kdiag.lock")}
	cache := &repos.Cache{Dir: filepath.Join(root, "cache")}
	if _, err := repos.Add(t.Context(), lock, cache, "team", team.URL(), ""); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(root, "p.yaml"), []byte("auth: {insecure: true}\nroutes:\n  - {runbook: team-check}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Specs: std.Specs(), StoreDir: t.TempDir(), Repos: &Repos{Lock: lock, Cache: cache, Base: &engine.Loader{Builtin: runbooks.FS}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r2 := team.Commit(map[string]string{"team-check.star": "def main(p):\n    verdict(\"v2\")\n"}, "v2")
	s.startUpdates(50 * time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for s.loader.Load().Origins["team"].Commit != r2 {
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled update did not move team to %s: %+v", r2, s.loader.Load().Origins)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
