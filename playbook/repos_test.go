package playbook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/repos"
	"github.com/kdiag/kdiag/engine/repos/repotest"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/runbooks"
)

const teamCheck = `load("@rel//util.star", "greet")
runbook(name = "team-check", summary = "Says the team's version.")

def main(p):
    verdict(greet("%s"))
`

// pinned adds team (branch main) and rel (tag v1.0.0) to a lock over
// real bare repositories and returns the lock, the cache and the remotes.
func pinned(t *testing.T) (*repos.Lock, *repos.Cache, *repotest.Remote, *repotest.Remote) {
	t.Helper()
	root := t.TempDir()
	team, rel := repotest.New(t, root, "team"), repotest.New(t, root, "rel")
	team.Commit(map[string]string{"team-check.star": strings.Replace(teamCheck, "%s", "v1", 1), "kdiag.yaml": "name: team\n"}, "v1")
	rel.Commit(map[string]string{"util.star": "def greet(v):\n    return \"hello from \" + v\n"}, "rel 1")
	rel.Tag("v1.0.0")
	lock := &repos.Lock{Path: filepath.Join(root, "kdiag.lock")}
	cache := &repos.Cache{Dir: filepath.Join(root, "cache")}
	if _, err := repos.Add(t.Context(), lock, cache, "team", team.URL(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := repos.Add(t.Context(), lock, cache, "rel", rel.URL(), "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := lock.Write(); err != nil {
		t.Fatal(err)
	}
	return lock, cache, team, rel
}

// postRepoUpdate posts to /repos/update with token (none: "") and
// returns the status and the decoded answer.
func postRepoUpdate(t *testing.T, s *playbooktest.Server, token string) (int, playbook.RepoUpdateResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/repos/update", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out playbook.RepoUpdateResponse
	json.Unmarshal(b, &out)
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
	}
	return resp.StatusCode, out
}

// TestRepoUpdateWebhook: the server runs the pinned commits; POST
// /repos/update (authenticated only) moves the branch pin and refuses the
// moved tag; the next run names the new commit, the lock file and the
// metrics say so; an update that would break a route is not applied.
func TestRepoUpdateWebhook(t *testing.T) {
	lock, cache, team, rel := pinned(t)
	e0, _ := lock.Get("team")
	r1 := e0.Commit
	relPin, _ := lock.Get("rel")
	rel1 := relPin.Commit
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
	cfg := playbooktest.Config(t, dir, "auth: {token_file: token}\nroutes:\n  - name: team\n    match: {alertname: KubePodNotReady}\n    runbook: team-check\n")
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: std.Specs(), Repos: &playbook.Repos{
		Lock: lock, Cache: cache, Base: &engine.Loader{Builtin: runbooks.FS}, WriteLock: true}})
	s.Token = testToken
	run := func(pod string) (*playbook.Meta, *transcript.Transcript) {
		t.Helper()
		res := s.Alerts(t, playbooktest.KubePodNotReady("default", pod), http.StatusOK)
		m := s.Wait(t, res[0].Run, time.Minute)
		tr, err := transcript.ReadFile(s.Store().TranscriptPath(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		return m, tr
	}
	commits := func(tr *transcript.Transcript) map[string]string {
		out := map[string]string{}
		for _, f := range tr.Header.Files {
			out[f.Path] = f.Repo + "@" + f.Commit
		}
		return out
	}
	m, tr := run("a")
	if m.Status != playbook.StatusOK || m.Verdict != "hello from v1" || commits(tr)["@team//team-check.star"] != "team@"+r1 || commits(tr)["@rel//util.star"] != "rel@"+rel1 {
		t.Fatalf("first run %s %q, files %v", m.Status, m.Verdict, commits(tr))
	}

	r2 := team.Commit(map[string]string{"team-check.star": strings.Replace(teamCheck, "%s", "v2", 1)}, "v2")
	rel.Commit(map[string]string{"util.star": "def greet(v):\n    return \"evil \" + v\n"}, "rel 2")
	rel.Tag("v1.0.0")
	if code, _ := postRepoUpdate(t, s, ""); code != http.StatusUnauthorized {
		t.Fatalf("an update without the token: %d", code)
	}
	if code, _ := postRepoUpdate(t, s, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("an update with a wrong token: %d", code)
	}
	code, ans := postRepoUpdate(t, s, testToken)
	got := map[string]playbook.RepoUpdate{}
	for _, ru := range ans.Repos {
		got[ru.Repo] = ru
	}
	if code != http.StatusConflict || got["team"].Result != playbook.RepoUpdated || got["team"].To != r2 ||
		got["rel"].Result != playbook.RepoRefused || !strings.Contains(got["rel"].Message, "tag v1.0.0 of "+rel.URL()+" moved from "+rel1[:12]) {
		t.Fatalf("update: %d %+v", code, ans)
	}
	m, tr = run("b")
	if m.Verdict != "hello from v2" || commits(tr)["@team//team-check.star"] != "team@"+r2 || commits(tr)["@rel//util.star"] != "rel@"+rel1 {
		t.Fatalf("the run after the update: %q, files %v", m.Verdict, commits(tr))
	}
	if l, err := repos.ReadLock(lock.Path); err != nil {
		t.Fatal(err)
	} else if e, _ := l.Get("team"); e.Commit != r2 {
		t.Fatalf("lock file after the update: team at %s", e.Commit)
	}
	_, _, b := s.Get(t, "/metrics", "")
	for _, want := range []string{`kdiag_repo_updates_total{repo="rel",result="refused"} 1`, `kdiag_repo_updates_total{repo="team",result="updated"} 1`,
		`kdiag_repo_commit_info{commit="` + r2 + `",repo="team"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), `kdiag_repo_commit_info{commit="`+r1) {
		t.Error("metrics still name the old commit")
	}

	// A commit that removes the route's runbook is not applied.
	team.Commit(map[string]string{"team-check.star": ""}, "gone")
	code, ans = postRepoUpdate(t, s, testToken)
	if code != http.StatusConflict || ans.Repos[1].Repo != "team" || ans.Repos[1].Result != playbook.RepoRefused || !strings.Contains(ans.Repos[1].Message, "not applied") {
		t.Fatalf("update breaking the route: %d %+v", code, ans)
	}
	if m, tr = run("c"); m.Verdict != "hello from v2" || commits(tr)["@team//team-check.star"] != "team@"+r2 {
		t.Fatalf("the run after a refused update: %q, files %v", m.Verdict, commits(tr))
	}
}

// TestRepoUpdateInsecure: a server with no authentication never updates
// its repositories over HTTP.
func TestRepoUpdateInsecure(t *testing.T) {
	lock, cache, _, _ := pinned(t)
	cfg := playbooktest.Config(t, t.TempDir(), "auth: {insecure: true}\nrepo_update: {every: 1h}\nroutes:\n  - {runbook: team-check}\n")
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: std.Specs(), Repos: &playbook.Repos{Lock: lock, Cache: cache, Base: &engine.Loader{Builtin: runbooks.FS}}})
	if code, _ := postRepoUpdate(t, s, ""); code != http.StatusForbidden {
		t.Fatalf("an update on an insecure server: %d", code)
	}
	if _, err := playbook.Parse("p.yaml", []byte("auth: {insecure: true}\nrepo_update: {every: 5s}\nroutes:\n  - {runbook: x}\n")); err == nil || !strings.Contains(err.Error(), "p.yaml:2: repo_update.every must be at least 1m") {
		t.Fatalf("a too short schedule: %v", err)
	}
}

// bundling is the in-process executor claiming to take bundles, as the
// Job executor does: it keeps the bundle of each run it is given.
type bundling struct {
	playbook.Local
	mu      sync.Mutex
	bundles []*bundle.Bundle
}

func (b *bundling) TakesBundles() bool { return true }

func (b *bundling) Start(ctx context.Context, req playbook.RunRequest) (playbook.RunHandle, error) {
	b.mu.Lock()
	b.bundles = append(b.bundles, req.Bundle)
	b.mu.Unlock()
	return b.Local.Start(ctx, req)
}

// TestRepoUpdateBundles: for an executor that takes bundles each run gets
// the bundle of the files it loads at the commits pinned when it starts;
// an update whose files no longer fit a ConfigMap is not applied.
func TestRepoUpdateBundles(t *testing.T) {
	lock, cache, team, _ := pinned(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
	cfg := playbooktest.Config(t, dir, "auth: {token_file: token}\nroutes:\n  - name: team\n    runbook: team-check\n")
	ex := &bundling{Local: playbook.Local{Specs: std.Specs(), Version: "test"}}
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: std.Specs(), Executor: ex, Repos: &playbook.Repos{Lock: lock, Cache: cache, Base: &engine.Loader{Builtin: runbooks.FS}}})
	s.Token = testToken
	run := func(pod string) *bundle.Bundle {
		t.Helper()
		res := s.Alerts(t, playbooktest.KubePodNotReady("default", pod), http.StatusOK)
		if m := s.Wait(t, res[0].Run, time.Minute); m.Status != playbook.StatusOK {
			t.Fatalf("run: %s %s", m.Status, m.Message)
		}
		ex.mu.Lock()
		defer ex.mu.Unlock()
		return ex.bundles[len(ex.bundles)-1]
	}
	b1 := run("a")
	e, _ := lock.Get("team")
	if b1 == nil || b1.Manifest.Runbook != "@team//team-check.star" || b1.Manifest.Files[0].Commit != e.Commit || len(b1.Manifest.Files) != 2 {
		t.Fatalf("bundle of the first run: %+v", b1)
	}
	r2 := team.Commit(map[string]string{"team-check.star": strings.Replace(teamCheck, "%s", "v2", 1)}, "v2")
	if code, ans := postRepoUpdate(t, s, testToken); code != http.StatusOK {
		t.Fatalf("update: %d %+v", code, ans)
	}
	if b2 := run("b"); b2.Manifest.Files[0].Commit != r2 || b2.Digest == b1.Digest {
		t.Fatalf("bundle after the update: %+v", b2.Manifest)
	}
	team.Commit(map[string]string{"team-check.star": strings.Replace(teamCheck, "%s", "v3", 1) + "# " + strings.Repeat("x", bundle.MaxBytes) + "\n"}, "big")
	code, ans := postRepoUpdate(t, s, testToken)
	if code != http.StatusConflict || ans.Repos[1].Result != playbook.RepoRefused || !strings.Contains(ans.Repos[1].Message, "not applied: with the new commits route \"team\": bundle of @team//team-check.star") ||
		!strings.Contains(ans.Repos[1].Message, "over the 1048576 bytes (1 MiB) a ConfigMap holds") {
		t.Fatalf("an update too big for a bundle: %d %+v", code, ans)
	}
	if b3 := run("c"); b3.Manifest.Files[0].Commit != r2 {
		t.Fatalf("bundle after the refused update: %+v", b3.Manifest)
	}
}
