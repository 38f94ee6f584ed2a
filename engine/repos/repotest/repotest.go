// Package repotest makes real git repositories for tests: a bare
// repository as the remote (reached over file://) and a clone to commit,
// tag and force-push from.
package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Remote is a bare repository and a working clone pushing to it.
type Remote struct {
	t testing.TB
	// Bare is the bare repository, Work the clone.
	Bare, Work string
}

// Git runs git in dir with a fixed identity and no user config, failing
// the test on error; it returns the trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
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

// New makes root/NAME.git (branch main) and a clone of it.
func New(t testing.TB, root, name string) *Remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed (apt-get install git)")
	}
	r := &Remote{t: t, Bare: filepath.Join(root, name+".git"), Work: filepath.Join(root, name+"-work")}
	Git(t, root, "init", "--quiet", "--bare", "--initial-branch=main", r.Bare)
	Git(t, root, "init", "--quiet", "--initial-branch=main", r.Work)
	Git(t, r.Work, "remote", "add", "origin", r.Bare)
	return r
}

// Commit writes files (an empty content removes the file), commits and
// force-pushes main; it returns the commit.
func (r *Remote) Commit(files map[string]string, msg string) string {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.Work, p)
		if c == "" {
			os.Remove(full)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(c), 0o644)
	}
	Git(r.t, r.Work, "add", "-A")
	Git(r.t, r.Work, "commit", "--quiet", "-m", msg)
	Git(r.t, r.Work, "push", "--quiet", "--force", "origin", "main")
	return Git(r.t, r.Work, "rev-parse", "HEAD")
}

// Tag (re)tags the current commit and force-pushes the tag.
func (r *Remote) Tag(name string) {
	r.t.Helper()
	Git(r.t, r.Work, "tag", "-f", name)
	Git(r.t, r.Work, "push", "--quiet", "--force", "origin", name)
}

// URL is the remote's file:// URL.
func (r *Remote) URL() string { return "file://" + r.Bare }
