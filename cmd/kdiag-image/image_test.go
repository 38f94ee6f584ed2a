package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageTarball builds the image of a real ELF binary (this test's own)
// and reads the tarball back: the reference, the entrypoint, the platform,
// the labels, the files and their modes; a second build has the same
// digest.
func TestImageTarball(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "image.tar")
	bins := []platformBinary{{OS: "linux", Arch: "amd64", Path: self}}
	if err := run("ghcr.io/kdiag/kdiag:v9.9.9", bins, out, false, ""); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/kdiag/kdiag:v9.9.9")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != "/kdiag" || cf.OS != "linux" || cf.Architecture != "amd64" ||
		cf.Config.Labels["org.opencontainers.image.version"] != "v9.9.9" || cf.Config.User != "" {
		t.Errorf("config: entrypoint %v platform %s/%s labels %v user %q", cf.Config.Entrypoint, cf.OS, cf.Architecture, cf.Config.Labels, cf.Config.User)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want, _ := os.ReadFile(self)
	got := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h.Mode
		if h.Name == "kdiag" {
			body, _ := io.ReadAll(tr)
			if len(body) != len(want) {
				t.Errorf("/kdiag: %d bytes, want %d", len(body), len(want))
			}
		}
	}
	for f, mode := range map[string]int64{"kdiag": 0o755, "etc/passwd": 0o644, "etc/group": 0o644, "tmp/": 0o1777} {
		if got[f] != mode {
			t.Errorf("%s: mode %o, want %o (files %v)", f, got[f], mode, got)
		}
	}
	d1, _ := img.Digest()
	out2 := filepath.Join(dir, "again.tar")
	if err := run("ghcr.io/kdiag/kdiag:v9.9.9", bins, out2, false, ""); err != nil {
		t.Fatal(err)
	}
	img2, _ := tarball.ImageFromPath(out2, &tag)
	if d2, _ := img2.Digest(); d1 != d2 {
		t.Errorf("not reproducible: %s then %s", d1, d2)
	}
}

func TestImageErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "kdiag")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	self, _ := os.Executable()
	out := filepath.Join(dir, "x.tar")
	for _, tc := range []struct {
		ref  string
		bins []platformBinary
		out  string
		push bool
		want string
	}{
		{"ghcr.io/kdiag/kdiag:v1", []platformBinary{{"linux", "amd64", notELF}}, out, false, "not an ELF executable"},
		{"ghcr.io/kdiag/kdiag:latest", []platformBinary{{"linux", "amd64", self}}, out, false, "not latest"},
		{"ghcr.io/kdiag/kdiag", []platformBinary{{"linux", "amd64", self}}, out, false, "-ref ghcr.io/kdiag/kdiag"},
		{"ghcr.io/kdiag/kdiag:v1", nil, out, false, "give -ref, at least one -binary"},
		{"ghcr.io/kdiag/kdiag:v1", []platformBinary{{"linux", "amd64", self}}, out, true, "one of -o FILE.tar or -push"},
		{"ghcr.io/kdiag/kdiag:v1", []platformBinary{{"linux", "amd64", self}, {"linux", "arm64", self}}, out, false, "-o writes one platform"},
		{"ghcr.io/kdiag/kdiag:v1", []platformBinary{{"linux", "amd64", filepath.Join(dir, "missing")}}, out, false, "no such file"},
	} {
		err := run(tc.ref, tc.bins, tc.out, tc.push, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err = %v, want %q", tc.ref, tc.bins, err, tc.want)
		}
	}
	var b binaryFlag
	if err := b.Set("linux=x"); err == nil {
		t.Error("-binary linux=x accepted")
	}
	if err := b.Set("linux/arm64=dist/kdiag"); err != nil || b[0] != (platformBinary{"linux", "arm64", "dist/kdiag"}) {
		t.Errorf("-binary linux/arm64=dist/kdiag: %v %v", b, err)
	}
}
