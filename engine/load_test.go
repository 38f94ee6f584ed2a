package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
)

// TestLoadConfinement lays out a repository (with kdiag.yaml), a plain
// runbook directory and a secret module outside both, and loads through
// every way out: "//..", "../..", a symlinked module, a symlinked
// directory, a named repository's "..". Each is refused with an error
// naming the load; loads inside stay allowed.
func TestLoadConfinement(t *testing.T) {
	top := t.TempDir()
	write := func(rel, src string) string {
		p := filepath.Join(top, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("outside/secret.star", "secret = 'hunter2'\n")
	write("repo/kdiag.yaml", "")
	write("repo/lib/ok.star", "ok = 1\n")
	write("plain/sub/a.star", "load('../b.star', 'b')\na = b\n")
	write("plain/b.star", "b = 2\n")
	write("named/lib/x.star", "x = 3\n")
	if err := os.Symlink(filepath.Join(top, "outside/secret.star"), filepath.Join(top, "repo/lib/evil.star")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(top, "outside"), filepath.Join(top, "repo/linkdir")); err != nil {
		t.Fatal(err)
	}
	main := func(dir, load string) string {
		return write(dir+"/rb.star", load+"\ndef main(p):\n  pass\n")
	}
	loader := &engine.Loader{Repos: map[string]string{"named": filepath.Join(top, "named")}}
	for _, c := range []struct {
		name, dir, load, want string
	}{
		{"repo root up", "repo/runbooks", `load("//../outside/secret.star", "secret")`, "outside the repository root"},
		{"relative up", "repo/runbooks", `load("../../outside/secret.star", "secret")`, "outside the repository root"},
		{"symlinked module", "repo/runbooks", `load("//lib/evil.star", "secret")`, "is a symlink to"},
		{"symlinked dir", "repo/runbooks", `load("../linkdir/secret.star", "secret")`, "is a symlink to"},
		{"plain dir up", "plain", `load("../outside/secret.star", "secret")`, "outside the runbook directory"},
		{"plain // up", "plain", `load("//../outside/secret.star", "secret")`, "outside the runbook directory"},
		{"named repo up", "repo/runbooks", `load("@named//../outside/secret.star", "secret")`, "leaves the repository @named"},
		{"repo ok", "repo/runbooks", `load("//lib/ok.star", "ok")`, ""},
		{"plain nested ok", "plain", `load("sub/a.star", "a")`, ""},
		{"named ok", "plain", `load("@named//lib/x.star", "x")`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rb := main(c.dir, c.load)
			_, err := engine.Describe(rb, engine.Options{Loader: loader})
			if c.want == "" {
				if err != nil {
					t.Fatalf("allowed load refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			mod := strings.Split(c.load, `"`)[1]
			if !strings.Contains(err.Error(), "load("+`"`+mod+`"`+")") || !strings.Contains(err.Error(), "loads may not leave") {
				t.Errorf("error does not name the load %q or say what is wrong: %v", mod, err)
			}
		})
	}
}
