package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/transcript"
)

// gitRemote is a real bare repository (the remote) and a clone to commit
// to it from.
type gitRemote struct {
	t          *testing.T
	bare, work string
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRemote(t *testing.T, root, name string) *gitRemote {
	r := &gitRemote{t: t, bare: filepath.Join(root, name+".git"), work: filepath.Join(root, name+"-work")}
	git(t, root, "init", "--quiet", "--bare", "--initial-branch=main", r.bare)
	git(t, root, "init", "--quiet", "--initial-branch=main", r.work)
	git(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

// commit writes files, commits and pushes them; it returns the commit.
func (r *gitRemote) commit(files map[string]string, msg string) string {
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(r.work, p)), 0o755)
		os.WriteFile(filepath.Join(r.work, p), []byte(c), 0o644)
	}
	git(r.t, r.work, "add", "-A")
	git(r.t, r.work, "commit", "--quiet", "-m", msg)
	git(r.t, r.work, "push", "--quiet", "--force", "origin", "main")
	return git(r.t, r.work, "rev-parse", "HEAD")
}

func (r *gitRemote) url() string { return "file://" + r.bare }

const teamRunbook = `runbook(name = "team-check", summary = "Says the team's version.")
load("@lib//util.star", "greet")

def main(p):
    verdict(greet("%s"))
`

// TestRepoPinUpdateOffline drives kdiag repo against real bare git
// repositories: a pinned tag and a tracked branch, a runbook of one
// repository loading another's file, provenance in the transcript and the
// report, a moved tag refused, a fast-forward and a force-push updated,
// runs offline from the cache, and a tampered cache refused.
func TestRepoPinUpdateOffline(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed (apt-get install git)")
	}
	root := t.TempDir()
	t.Setenv("KDIAG_CACHE_DIR", filepath.Join(root, "cache"))
	t.Setenv("KDIAG_CONFIG_DIR", filepath.Join(root, "config"))
	lock := filepath.Join(root, "project", "kdiag.lock")
	team, lib := newRemote(t, root, "team"), newRemote(t, root, "lib")
	v1 := team.commit(map[string]string{"team-check.star": strings.Replace(teamRunbook, "%s", "v1", 1), "kdiag.yaml": "name: team\n"}, "v1")
	git(t, team.work, "tag", "v1.0.0")
	git(t, team.work, "push", "--quiet", "origin", "v1.0.0")
	lib1 := lib.commit(map[string]string{"util.star": "def greet(v):\n    return \"hello from \" + v\n"}, "lib 1")

	kd := func(args ...string) (string, error) {
		out, errOut, err := runKdiag(append([]string{"--lock", lock}, args...)...)
		return out + errOut, err
	}
	if out, err := kd("repo", "add", "team", team.url(), "--ref", "v1.0.0"); err != nil || !strings.Contains(out, v1) {
		t.Fatalf("repo add team: %v\n%s", err, out)
	}
	if out, err := kd("repo", "add", "lib", lib.url()); err != nil || !strings.Contains(out, lib1) {
		t.Fatalf("repo add lib: %v\n%s", err, out)
	}
	if _, err := kd("repo", "add", "lib", lib.url()); err == nil || !strings.Contains(err.Error(), "already in") {
		t.Fatalf("a second add of lib: %v", err)
	}
	if _, err := kd("repo", "add", "x", team.url(), "--ref", "nope"); err == nil || !strings.Contains(err.Error(), `"nope" is neither a tag, a branch nor a commit`) {
		t.Fatalf("add with a bad ref: %v", err)
	}
	if out, _ := kd("repo", "list"); !strings.Contains(out, "team") || !strings.Contains(out, "tag v1.0.0") || !strings.Contains(out, v1[:12]) || !strings.Contains(out, "head (default branch)") {
		t.Fatalf("repo list:\n%s", out)
	}

	run := func() (string, *transcript.Transcript) {
		t.Helper()
		tp := filepath.Join(t.TempDir(), "run.jsonl")
		out, err := kd("run", "team-check", "--record", tp)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		tr, err := transcript.ReadFile(tp)
		if err != nil {
			t.Fatal(err)
		}
		return out, tr
	}
	out, tr := run()
	if !strings.Contains(out, "hello from v1") {
		t.Fatalf("run:\n%s", out)
	}
	origins := map[string]string{}
	for _, f := range tr.Header.Files {
		origins[f.Path] = f.Repo + " " + f.URL + " " + f.Commit
	}
	if origins["@team//team-check.star"] != "team "+team.url()+" "+v1 || origins["@lib//util.star"] != "lib "+lib.url()+" "+lib1 {
		t.Fatalf("provenance in the transcript: %v", origins)
	}
	if rep, _ := kd("report", tr.Path); !strings.Contains(rep, "Source    team at "+v1) || !strings.Contains(rep, "Source    lib at "+lib1) {
		t.Fatalf("report lacks the sources:\n%s", rep)
	}

	// The branch moves on, then is force-pushed; the tag is moved.
	lib2 := lib.commit(map[string]string{"util.star": "def greet(v):\n    return \"hi from \" + v\n"}, "lib 2")
	if out, err := kd("repo", "update", "lib"); err != nil || !strings.Contains(out, lib1[:12]+" -> "+lib2[:12]) || strings.Contains(out, "force-pushed") {
		t.Fatalf("update lib: %v\n%s", err, out)
	}
	git(t, lib.work, "reset", "--quiet", "--hard", lib1)
	lib3 := lib.commit(map[string]string{"util.star": "def greet(v):\n    return \"hey from \" + v\n"}, "lib 3")
	if out, err := kd("repo", "update", "lib"); err != nil || !strings.Contains(out, "force-pushed") {
		t.Fatalf("update after a force-push: %v\n%s", err, out)
	}
	v2 := team.commit(map[string]string{"team-check.star": strings.Replace(teamRunbook, "%s", "v2", 1)}, "v2")
	git(t, team.work, "tag", "-f", "v1.0.0")
	git(t, team.work, "push", "--quiet", "--force", "origin", "v1.0.0")
	if _, err := kd("repo", "update", "team"); err == nil || !strings.Contains(err.Error(), "tag v1.0.0 of "+team.url()+" moved from "+v1[:12]+" to "+v2[:12]) {
		t.Fatalf("update of a moved tag: %v", err)
	}
	if out, _ := run(); !strings.Contains(out, "hey from v1") {
		t.Fatalf("after the updates the run should use lib 3 and team's pinned v1:\n%s", out)
	}
	// Replaying the first recording against today's pins names what changed.
	if out, err := kd("replay", tr.Path, "--runbook", "team-check"); err != nil || !strings.Contains(out, "changed since the recording: @lib//util.star (lib at "+lib1[:12]+", now "+lib3[:12]+")") || strings.Contains(out, "team-check.star (") {
		t.Fatalf("replay against the new pins: %v\n%s", err, out)
	}

	// Offline: the remotes are gone, runs work from the cache, even with
	// the extracted trees removed (they come back from the cached clones).
	os.RemoveAll(team.bare)
	os.RemoveAll(lib.bare)
	os.RemoveAll(filepath.Join(root, "cache", "trees"))
	if out, _ := run(); !strings.Contains(out, "hey from v1") {
		t.Fatalf("offline run:\n%s", out)
	}
	// A tampered cached tree is refused.
	os.WriteFile(filepath.Join(root, "cache", "trees", v1, "team-check.star"), []byte(strings.Replace(teamRunbook, "%s", "evil", 1)), 0o644)
	if out, err := kd("run", "team-check"); err == nil || !strings.Contains(err.Error(), "the cache was modified or the lock edited") {
		t.Fatalf("run with a tampered cache: %v\n%s", err, out)
	}
	if out, err := kd("repo", "remove", "team"); err != nil {
		t.Fatalf("remove: %v %s", err, out)
	}
	if out, _ := kd("repo", "list"); strings.Contains(out, "team") {
		t.Fatalf("team still listed:\n%s", out)
	}
}
