package main

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"gopkg.in/yaml.v3"
)

// goreleaserConfig is the part of .goreleaser.yaml the release relies on.
type goreleaserConfig struct {
	Version int `yaml:"version"`
	Builds  []struct {
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
		Ldflags []string `yaml:"ldflags"`
	} `yaml:"builds"`
	Archives []struct {
		Formats      []string `yaml:"formats"`
		NameTemplate string   `yaml:"name_template"`
		Files        []string `yaml:"files"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
		Algorithm    string `yaml:"algorithm"`
	} `yaml:"checksum"`
}

// krewPlugin is a krew plugin manifest.
type krewPlugin struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Version          string `yaml:"version"`
		ShortDescription string `yaml:"shortDescription"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			URI    string `yaml:"uri"`
			Sha256 string `yaml:"sha256"`
			Files  []struct {
				From string `yaml:"from"`
				To   string `yaml:"to"`
			} `yaml:"files"`
			Bin string `yaml:"bin"`
		} `yaml:"platforms"`
	} `yaml:"spec"`
}

func readRepoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReleaseConfig checks the release: .goreleaser.yaml builds kdiag for
// linux and darwin on amd64 and arm64 with its version, archives it with
// the LICENSE and writes checksums (and `goreleaser check` accepts it when
// goreleaser is installed, as .ci/run does); .krew.yaml, rendered as
// krew-release-bot renders it, installs exactly those archives as the
// kubectl plugin kubectl-kdiag.
func TestReleaseConfig(t *testing.T) {
	if lic := readRepoFile(t, "LICENSE"); !bytes.Contains(lic, []byte("Apache License\n                           Version 2.0, January 2004")) {
		t.Errorf("LICENSE is not the Apache License 2.0")
	}
	var gr goreleaserConfig
	dec := yaml.NewDecoder(bytes.NewReader(readRepoFile(t, ".goreleaser.yaml")))
	if err := dec.Decode(&gr); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if gr.Version != 2 || len(gr.Builds) != 1 || len(gr.Archives) != 1 {
		t.Fatalf(".goreleaser.yaml: want version 2, one build and one archive, got %+v", gr)
	}
	b, a := gr.Builds[0], gr.Archives[0]
	if b.Main != "./cmd/kdiag" || b.Binary != "kdiag" || !slices.Contains(b.Env, "CGO_ENABLED=0") {
		t.Errorf("build: want ./cmd/kdiag as a static kdiag, got %+v", b)
	}
	if !slices.Equal(b.Goos, []string{"linux", "darwin"}) || !slices.Equal(b.Goarch, []string{"amd64", "arm64"}) {
		t.Errorf("build targets %v × %v, want linux, darwin × amd64, arm64", b.Goos, b.Goarch)
	}
	if len(b.Ldflags) != 1 || !strings.Contains(b.Ldflags[0], "-X main.version=v{{ .Version }}") {
		t.Errorf("ldflags %q do not set main.version", b.Ldflags)
	}
	if !slices.Equal(a.Formats, []string{"tar.gz"}) || !slices.Contains(a.Files, "LICENSE") {
		t.Errorf("archive: want tar.gz with the LICENSE, got %+v", a)
	}
	if gr.Checksum.Algorithm != "sha256" || gr.Checksum.NameTemplate == "" {
		t.Errorf("checksum: want a sha256 checksums file, got %+v", gr.Checksum)
	}

	const tag = "v1.2.3"
	const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tmpl, err := template.New("krew").Funcs(template.FuncMap{
		// addURIAndSha is krew-release-bot's: it renders the URI with the
		// tag and adds the archive's sha256.
		"addURIAndSha": func(uri, tag string) string {
			return "uri: " + strings.ReplaceAll(uri, "{{ .TagName }}", tag) + "\n    sha256: " + sha
		},
	}).Parse(string(readRepoFile(t, ".krew.yaml")))
	if err != nil {
		t.Fatalf(".krew.yaml: %v", err)
	}
	var rendered bytes.Buffer
	if err := tmpl.Execute(&rendered, map[string]string{"TagName": tag}); err != nil {
		t.Fatalf(".krew.yaml: %v", err)
	}
	var k krewPlugin
	dec = yaml.NewDecoder(&rendered)
	dec.KnownFields(false)
	if err := dec.Decode(&k); err != nil {
		t.Fatalf(".krew.yaml rendered: %v\n%s", err, rendered.String())
	}
	if k.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || k.Kind != "Plugin" || k.Metadata.Name != "kdiag" || k.Spec.Version != tag || k.Spec.ShortDescription == "" {
		t.Errorf(".krew.yaml: not the kdiag Plugin at %s: %+v", tag, k)
	}
	var platforms []string
	for _, p := range k.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		platforms = append(platforms, os+"/"+arch)
		archive := strings.NewReplacer("{{ .ProjectName }}", "kdiag", "{{ .Os }}", os, "{{ .Arch }}", arch).Replace(a.NameTemplate) + ".tar.gz"
		if want := "https://github.com/kdiag/kdiag/releases/download/" + tag + "/" + archive; p.URI != want {
			t.Errorf("%s/%s: uri %s, want goreleaser's archive %s", os, arch, p.URI, want)
		}
		if p.Sha256 != sha {
			t.Errorf("%s/%s: sha256 %q not filled in", os, arch, p.Sha256)
		}
		if p.Bin != "kubectl-kdiag" || len(p.Files) == 0 || p.Files[0].From != path.Base(b.Binary) || p.Files[0].To != "kubectl-kdiag" {
			t.Errorf("%s/%s: want kdiag installed as bin kubectl-kdiag, got files %+v bin %q", os, arch, p.Files, p.Bin)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf(".krew.yaml platforms %v, want %v", platforms, want)
	}

	goreleaser, err := exec.LookPath("goreleaser")
	if err != nil {
		gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "goreleaser")
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gobin = filepath.Join(strings.TrimSpace(string(out)), "bin", "goreleaser")
		}
		if _, err := os.Stat(gobin); err != nil {
			t.Skip("goreleaser is not installed (.ci/run installs it: go install github.com/goreleaser/goreleaser/v2@v2.16.0); the configuration was checked structurally only")
		}
		goreleaser = gobin
	}
	cmd := exec.Command(goreleaser, "check", "--config", ".goreleaser.yaml")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("goreleaser check: %v\n%s", err, out)
	}
}
