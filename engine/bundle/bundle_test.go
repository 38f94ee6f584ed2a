package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kdiag/kdiag/engine"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// fixture writes a repository "team" (pinned), a repository "lib" (a
// plain directory) and returns a loader over them and the embedded-like
// library.
func fixture(t testing.TB) *engine.Loader {
	t.Helper()
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("team/kdiag.yaml", "name: team\n")
	write("team/check.star", `load("//lib/words.star", "word")
load("@lib//util.star", "greet")
load("@kdiag//lib/x.star", "x")
runbook(name = "check", summary = "s")

def main(p):
    verdict(greet(word) + x)
`)
	write("team/lib/words.star", "word = \"team\"\n")
	write("lib/util.star", "def greet(v):\n    return \"hello \" + v\n")
	return &engine.Loader{
		Builtin: fstest.MapFS{"lib/x.star": {Data: []byte("x = \"!\"\n")}},
		Repos:   map[string]string{"team": filepath.Join(root, "team"), "lib": filepath.Join(root, "lib")},
		Origins: map[string]engine.Origin{"team": {URL: "file:///srv/team.git", Commit: commit}},
	}
}

func build(t *testing.T, l *engine.Loader, module string) (*engine.Program, *Bundle) {
	t.Helper()
	p, err := engine.Load(module, engine.Options{Loader: l})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestRoundTrip: a bundle verified and loaded again gives the runbook
// exactly the files, digests, loads and provenance it had on the server.
func TestRoundTrip(t *testing.T) {
	p, b := build(t, fixture(t), "@team//check.star")
	if len(b.Manifest.Files) != 4 || !strings.HasPrefix(b.Name(), "kdiag-bundle-") || len(b.Name()) != len("kdiag-bundle-")+16 {
		t.Fatalf("bundle %s: %+v", b.Name(), b.Manifest)
	}
	v, err := Verify(b.Data, b.Digest)
	if err != nil {
		t.Fatal(err)
	}
	q, err := engine.Load(v.Manifest.Runbook, engine.Options{Loader: v.Loader()})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(q.Files)
	want, _ := json.Marshal(p.Files)
	if string(got) != string(want) {
		t.Fatalf("files from the bundle:\n%s\nwant\n%s", got, want)
	}
	if q.Files[0].Commit != commit || q.Files[0].Repo != "team" || q.Files[2].Repo != "" {
		t.Fatalf("provenance: %+v", q.Files)
	}
	// Same files, same bundle: the name is content-addressed.
	if _, b2 := build(t, fixture(t), "@team//check.star"); b2.Digest != b.Digest {
		t.Fatalf("digest %s then %s", b.Digest, b2.Digest)
	}
}

// TestLocalFilesRelative: local .star files are named relative to their
// common directory, so no absolute path or .. reaches a bundle.
func TestLocalFilesRelative(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "pb", "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "pb", "kdiag.yaml"), []byte("name: pb\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pb", "run", "a.star"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "pb", "run"), 0o755)
	os.WriteFile(filepath.Join(dir, "pb", "run", "a.star"), []byte("load(\"//lib/b.star\", \"b\")\nload(\"c.star\", \"c\")\ndef main(p):\n    verdict(b + c)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pb", "run", "c.star"), []byte("c = \"c\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pb", "lib", "b.star"), []byte("b = \"b\"\n"), 0o644)
	_, b := build(t, &engine.Loader{}, filepath.Join(dir, "pb", "run", "a.star"))
	var names []string
	for _, f := range b.Manifest.Files {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "run/a.star,lib/b.star,run/c.star" || b.Manifest.Loads["run/a.star|//lib/b.star"] != "lib/b.star" {
		t.Fatalf("names %v, loads %v", names, b.Manifest.Loads)
	}
	v, err := Verify(b.Data, b.Digest)
	if err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, v)
	if res.Footer.Status != "ok" || res.Header.Runbook != "run/a.star" {
		t.Fatalf("run from the bundle: %+v %v", res.Footer, res.Err)
	}
}

func mustRun(t *testing.T, b *Bundle) *engine.Result {
	t.Helper()
	p, err := engine.Load(b.Manifest.Runbook, engine.Options{Loader: b.Loader()})
	if err != nil {
		t.Fatal(err)
	}
	return p.Run(t.Context(), engine.Options{Loader: b.Loader()})
}

// TestTampered: a changed file, a changed manifest, a missing or an extra
// entry are each refused, naming what is wrong and both digests.
func TestTampered(t *testing.T) {
	_, b := build(t, fixture(t), "@team//check.star")
	f := b.Manifest.Files[1]
	data := clone(b.Data)
	data[f.Key] = "word = \"evil\"\n"
	sum := sha256.Sum256([]byte(data[f.Key]))
	_, err := Verify(data, b.Digest)
	if err == nil || !strings.Contains(err.Error(), "file "+f.Name+" (entry "+f.Key+") has sha256 "+hex.EncodeToString(sum[:])+", the manifest says "+f.SHA256) {
		t.Fatalf("tampered file: %v", err)
	}
	data = clone(b.Data)
	data[ManifestKey] = strings.Replace(data[ManifestKey], f.SHA256, strings.Repeat("0", 64), 1)
	if _, err := Verify(data, b.Digest); err == nil || !strings.Contains(err.Error(), "the run expects "+b.Digest) {
		t.Fatalf("tampered manifest: %v", err)
	}
	data = clone(b.Data)
	delete(data, f.Key)
	if _, err := Verify(data, b.Digest); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("missing file: %v", err)
	}
	data = clone(b.Data)
	data["evil.star"] = "x"
	if _, err := Verify(data, b.Digest); err == nil || !strings.Contains(err.Error(), `entry "evil.star" is not in its manifest`) {
		t.Fatalf("extra entry: %v", err)
	}
	if _, err := Verify(b.Data, "sha256:abc"); err == nil || !strings.Contains(err.Error(), "want sha256: and 64 hex digits") {
		t.Fatalf("bad digest: %v", err)
	}
}

func clone(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// forge returns data whose manifest is m with a matching digest: what
// someone who can write the ConfigMap and the Job's args could make.
func forge(m Manifest, files map[string]string) (map[string]string, string) {
	b, _ := json.Marshal(m)
	data := clone(files)
	data[ManifestKey] = string(b)
	sum := sha256.Sum256(b)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

// TestHostileManifest: names that are absolute, hold .. or . segments,
// keys the builder never makes, provenance that does not match the name
// and loads that leave the bundle are refused even with a valid digest.
func TestHostileManifest(t *testing.T) {
	src := "def main(p):\n    pass\n"
	sum := sha256.Sum256([]byte(src))
	file := func(key, name string) File { return File{Key: key, Name: name, SHA256: hex.EncodeToString(sum[:])} }
	for _, c := range []struct {
		name string
		m    Manifest
		want string
	}{
		{"dotdot", Manifest{Files: []File{file("f0", "../etc/x.star")}}, "segment \"..\""},
		{"repo dotdot", Manifest{Files: []File{file("f0", "@team//../x.star")}}, "segment \"..\""},
		{"absolute", Manifest{Files: []File{file("f0", "/etc/x.star")}}, "clean relative path"},
		{"dot", Manifest{Files: []File{file("f0", "a/./x.star")}}, "clean relative path"},
		{"not star", Manifest{Files: []File{file("f0", "x.sh")}}, "clean relative path"},
		{"bad repo", Manifest{Files: []File{file("f0", "@../..//x.star")}}, "want @REPO//path.star"},
		{"key path", Manifest{Files: []File{file("../../etc/passwd", "x.star")}}, `key "../../etc/passwd": want f0`},
		{"key order", Manifest{Files: []File{file("f1", "x.star")}}, "want f0"},
		{"twice", Manifest{Files: []File{file("f0", "x.star"), file("f1", "x.star")}}, "listed twice"},
		{"control", Manifest{Files: []File{file("f0", "a\nb.star")}}, "is not allowed"},
		{"provenance", Manifest{Files: []File{{Key: "f0", Name: "x.star", SHA256: hex.EncodeToString(sum[:]), Repo: "team", URL: "u", Commit: commit}}}, "not the one its name says"},
		{"load outside", Manifest{Files: []File{file("f0", "x.star")}, Loads: map[string]string{"x.star|y.star": "/etc/y.star"}}, "not between files of the bundle"},
		{"version", Manifest{Version: 2, Files: []File{file("f0", "x.star")}}, "manifest version 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.m.Version == 0 {
				c.m.Version = 1
			}
			c.m.Runbook = c.m.Files[0].Name
			files := map[string]string{}
			for _, f := range c.m.Files {
				files[f.Key] = src
			}
			data, digest := forge(c.m, files)
			_, err := Verify(data, digest)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestSizeLimit: a bundle over what a ConfigMap holds is refused when it
// is built, naming the limit and the size.
func TestSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := "# " + strings.Repeat("x", MaxBytes) + "\ndef main(p):\n    pass\n"
	os.WriteFile(filepath.Join(dir, "big.star"), []byte(big), 0o644)
	p, err := engine.Load(filepath.Join(dir, "big.star"), engine.Options{Loader: &engine.Loader{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(p)
	if err == nil || !strings.Contains(err.Error(), "over the 1048576 bytes (1 MiB) a ConfigMap holds") || !strings.Contains(err.Error(), "are 10487") {
		t.Fatalf("oversized bundle: %v", err)
	}
}

// TestReadDir reads a bundle as the kubelet mounts a ConfigMap (entries
// as symlinks into a ..data directory): it verifies, and an entry the
// builder did not make, or an oversized file, is refused.
func TestReadDir(t *testing.T) {
	_, b := build(t, fixture(t), "@team//check.star")
	mount := func(data map[string]string) string {
		dir := t.TempDir()
		ts := filepath.Join(dir, "..2026_12_01_00_00_00.1")
		os.Mkdir(ts, 0o755)
		for k, v := range data {
			os.WriteFile(filepath.Join(ts, k), []byte(v), 0o644)
		}
		os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data"))
		for k := range data {
			os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k))
		}
		return dir
	}
	got, err := ReadDir(mount(b.Data), b.Digest)
	if err != nil || got.Manifest.Runbook != "@team//check.star" {
		t.Fatalf("read: %v", err)
	}
	data := clone(b.Data)
	data["run.sh"] = "#!/bin/sh"
	if _, err := ReadDir(mount(data), b.Digest); err == nil || !strings.Contains(err.Error(), `entry "run.sh"`) {
		t.Fatalf("extra entry: %v", err)
	}
	data = clone(b.Data)
	data["f1"] = strings.Repeat("x", MaxBytes)
	if _, err := ReadDir(mount(data), b.Digest); err == nil || !strings.Contains(err.Error(), "over the bundle limit") {
		t.Fatalf("oversized entry: %v", err)
	}
	if _, err := ReadDir(t.TempDir(), b.Digest); err == nil || !strings.Contains(err.Error(), "not a bundle") {
		t.Fatalf("empty dir: %v", err)
	}
}

// BenchmarkBuildVerify measures what a run of a repository runbook adds
// on the server (Build) and in the Job's pod (Verify and the loader),
// for the fixture's runbook of four files.
func BenchmarkBuildVerify(b *testing.B) {
	l := fixture(b)
	p, err := engine.Load("@team//check.star", engine.Options{Loader: l})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		bu, err := Build(p)
		if err != nil {
			b.Fatal(err)
		}
		v, err := Verify(bu.Data, bu.Digest)
		if err != nil {
			b.Fatal(err)
		}
		v.Loader()
	}
}
