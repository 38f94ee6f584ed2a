package main

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	info := func(v string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: v}}, true }
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name, ldflags string
		read          func() (*debug.BuildInfo, bool)
		want          string
	}{
		{"ldflags win", "v1.2.3", info("v9.9.9"), "v1.2.3"},
		{"go install @version", "", info("v0.4.0"), "v0.4.0"},
		{"go build, untagged tree", "", info("v0.0.0-20261130182000-f6c6136aa000+dirty"), "v0.0.0-20261130182000-f6c6136aa000+dirty"},
		{"devel", "", info("(devel)"), devVersion},
		{"no build info", "", none, devVersion},
	} {
		if got := resolveVersion(tc.ldflags, tc.read); got != tc.want {
			t.Errorf("%s: resolveVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionOfGoInstall installs kdiag the way a user does, `go install
// github.com/kdiag/kdiag/cmd/kdiag@v0.9.0` (from a module proxy directory
// holding this tree as v0.9.0), and checks that `kdiag version` reports
// v0.9.0 from the build info; a build with -ldflags reports its own.
func TestVersionOfGoInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kdiag twice")
	}
	const modVersion = "v0.9.0"
	dir := t.TempDir()
	proxy := filepath.Join(dir, "proxy", "github.com", "kdiag", "kdiag", "@v")
	if err := os.MkdirAll(proxy, 0o755); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	writeModuleZip(t, root, filepath.Join(proxy, modVersion+".zip"), "github.com/kdiag/kdiag@"+modVersion)
	for name, b := range map[string][]byte{modVersion + ".mod": gomod, modVersion + ".info": []byte(`{"Version":"` + modVersion + `","Time":"2026-01-01T00:00:00Z"}`), "list": []byte(modVersion + "\n")} {
		if err := os.WriteFile(filepath.Join(proxy, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gobin := filepath.Join(dir, "bin")
	install := exec.Command("go", "install", "github.com/kdiag/kdiag/cmd/kdiag@"+modVersion)
	install.Dir = dir
	// The dependencies come from the module cache; kdiag from the proxy
	// directory (no checksum database: this machine may not reach it).
	install.Env = append(os.Environ(), "GOBIN="+gobin, "GOPROXY=file://"+filepath.Join(dir, "proxy")+",off",
		"GOSUMDB=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	got, err := exec.Command(filepath.Join(gobin, "kdiag"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("kdiag version: %v\n%s", err, got)
	}
	if !strings.HasPrefix(string(got), "kdiag "+modVersion+" ") {
		t.Errorf("go install'ed kdiag version = %q, want %s", got, modVersion)
	}

	stamped := filepath.Join(dir, "kdiag-ldflags")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v7.7.7", "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if got, _ := exec.Command(stamped, "version").CombinedOutput(); !strings.HasPrefix(string(got), "kdiag v7.7.7 ") {
		t.Errorf("kdiag version with -ldflags = %q, want v7.7.7", got)
	}
}

// writeModuleZip writes the module zip of the git-tracked files of the
// module at root (not those of nested modules) with the given prefix.
func writeModuleZip(t *testing.T, root, path, prefix string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	nested := map[string]bool{}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	for _, name := range files {
		if d := filepath.Dir(name); filepath.Base(name) == "go.mod" && d != "." {
			nested[d] = true
		}
	}
	// Files added but not yet committed belong to the tree too.
	extra, _ := exec.Command("git", "-C", root, "ls-files", "-z", "--others", "--exclude-standard").Output()
	files = append(files, strings.Split(strings.TrimRight(string(extra), "\x00"), "\x00")...)
next:
	for _, name := range files {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if nested[d] {
				continue next
			}
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			continue // deleted in the work tree
		}
		w, err := zw.Create(prefix + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
