package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/runbooks"
)

// TestRunBundle: kdiag run --bundle runs a runbook from a bundle
// directory with the files, loads and provenance it was made with, and
// refuses a tampered bundle, a wrong digest or another runbook before
// running anything.
func TestRunBundle(t *testing.T) {
	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "kdiag.yaml"), []byte("name: team\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "check.star"), []byte("load(\"//lib/w.star\", \"w\")\ndef main(p):\n    verdict(\"from the bundle: \" + w)\n"), 0o644)
	os.MkdirAll(filepath.Join(repo, "lib"), 0o755)
	os.WriteFile(filepath.Join(repo, "lib", "w.star"), []byte("w = \"team\"\n"), 0o644)
	commit := strings.Repeat("ab", 20)
	l := &engine.Loader{Builtin: runbooks.FS, Repos: map[string]string{"team": repo}, Origins: map[string]engine.Origin{"team": {URL: "https://git.example/team.git", Commit: commit}}}
	p, err := engine.Load("@team//check.star", engine.Options{Specs: builtins.All(builtins.Config{}), Loader: l})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	write := func(data map[string]string) string {
		dir := t.TempDir()
		for k, v := range data {
			os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644)
		}
		return dir
	}
	dir := write(b.Data)
	os.RemoveAll(repo) // nothing is read from the repository any more
	tp := filepath.Join(t.TempDir(), "run.jsonl")
	out, errOut, err := runKdiag("run", "--bundle", dir, "--bundle-digest", b.Digest, "@team//check.star", "--record", tp)
	if err != nil || !strings.Contains(out, "from the bundle: team") {
		t.Fatalf("run: %v\n%s%s", err, out, errOut)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Header.Files) != 2 || tr.Header.Files[1].Path != "@team//lib/w.star" || tr.Header.Files[1].Commit != commit || tr.Header.Files[1].URL != "https://git.example/team.git" {
		t.Fatalf("files in the transcript: %+v", tr.Header.Files)
	}

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"tampered": {[]string{"--bundle", func() string {
			d := map[string]string{}
			for k, v := range b.Data {
				d[k] = v
			}
			d["f1"] = "w = \"evil\"\n"
			return write(d)
		}(), "--bundle-digest", b.Digest, "@team//check.star"}, "file @team//lib/w.star (entry f1) has sha256 "},
		"wrong digest":  {[]string{"--bundle", dir, "--bundle-digest", "sha256:" + strings.Repeat("0", 64), "@team//check.star"}, "the run expects sha256:0000"},
		"other runbook": {[]string{"--bundle", dir, "--bundle-digest", b.Digest, "@team//other.star"}, "holds runbook @team//check.star, not @team//other.star"},
		"no digest":     {[]string{"--bundle", dir, "@team//check.star"}, "--bundle DIR and --bundle-digest sha256:HEX go together"},
		"extra file":    {[]string{"--bundle", write(map[string]string{"manifest.json": b.Data["manifest.json"], "f0": b.Data["f0"], "f1": b.Data["f1"], "x.star": "x"}), "--bundle-digest", b.Digest, "@team//check.star"}, `entry "x.star"`},
		"not a bundle":  {[]string{"--bundle", t.TempDir(), "--bundle-digest", b.Digest, "@team//check.star"}, "not a bundle"},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, err := runKdiag(append([]string{"run", "--no-record"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(out+errOut, "evil") {
				t.Fatalf("got %v\n%s%s\nwant an error with %q", err, out, errOut, c.want)
			}
		})
	}
}
