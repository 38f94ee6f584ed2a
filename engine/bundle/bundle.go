// Package bundle packs the exact files one runbook run loads — the
// runbook and its load() closure, with their repositories' provenance —
// into a content-addressed set of named texts that fits a Kubernetes
// ConfigMap, and verifies and loads such a set where the run happens (the
// playbook server's Job executor ships one to each Job).
//
// A bundle is manifest.json plus one entry per file, keyed f0, f1, ...
// (the runbook first). The manifest lists each file's name as the loader
// knows it (@REPO//path, or a path relative to the local files' common
// directory), its sha256 and, for a pinned repository, the repository,
// URL and commit; and the load() resolutions. The bundle's digest is the
// sha256 of manifest.json, so it covers every file through their digests.
// Everything read back is hostile input: names are checked, sizes
// bounded, and nothing is ever written under a name from a bundle.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kdiag/kdiag/engine"
)

// ManifestKey is the entry holding the manifest.
const ManifestKey = "manifest.json"

// MaxBytes is the most a bundle may hold, manifest included: what one
// ConfigMap holds (1 MiB).
const MaxBytes = 1 << 20

// NamePrefix starts the name of a bundle's ConfigMap; the first 16 hex
// digits of the digest follow.
const NamePrefix = "kdiag-bundle-"

// Limits on a manifest read back.
const (
	maxFiles   = 1000
	maxNameLen = 512
	maxURLLen  = 2048
)

// File is one file of a bundle, as its manifest lists it.
type File struct {
	// Key is its entry in the bundle: f0, f1, ... in order.
	Key string `json:"key"`
	// Name is the file's name as the run's loader and transcript know it.
	Name string `json:"name"`
	// SHA256 is the hex sha256 of its content.
	SHA256 string `json:"sha256"`
	// Repo, URL and Commit are its pinned repository's, if any.
	Repo   string `json:"repo,omitempty"`
	URL    string `json:"url,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// Manifest lists a bundle's files and their load() resolutions.
type Manifest struct {
	// Version is the manifest format, 1.
	Version int `json:"version"`
	// Runbook is the name of the runbook, Files[0].Name.
	Runbook string `json:"runbook"`
	// Files are the files, the runbook first.
	Files []File `json:"files"`
	// Loads maps "FROM|MODULE" to the file each load() resolved to.
	Loads map[string]string `json:"loads,omitempty"`
}

// Bundle is a built or verified bundle.
type Bundle struct {
	// Manifest lists the files.
	Manifest Manifest
	// Data holds every entry by key: ManifestKey and the files.
	Data map[string]string
	// Digest is "sha256:" and the hex sha256 of manifest.json.
	Digest string
}

// Name is the name of the bundle's ConfigMap: NamePrefix and the first 16
// hex digits of the digest.
func (b *Bundle) Name() string { return NameOf(b.Digest) }

// NameOf is the ConfigMap name of the bundle with the digest.
func NameOf(digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	if len(h) > 16 {
		h = h[:16]
	}
	return NamePrefix + h
}

// Size is the bundle's size in bytes: its entries' values, as a
// ConfigMap's limit counts them.
func (b *Bundle) Size() int {
	n := 0
	for _, v := range b.Data {
		n += len(v)
	}
	return n
}

// Build bundles the files the program read, as the transcript header
// records them (files of the embedded library included): local files are
// named relative to their common directory. A bundle over MaxBytes is an
// error naming the limit and the size.
func Build(p *engine.Program) (*Bundle, error) {
	if len(p.Files) == 0 {
		return nil, fmt.Errorf("bundle: the runbook loaded no file")
	}
	rename := localNames(p)
	m := Manifest{Version: 1, Runbook: rename(p.Files[0].Path), Loads: map[string]string{}}
	data := map[string]string{}
	for i, f := range p.Files {
		if !utf8.ValidString(f.Source) {
			return nil, fmt.Errorf("bundle: %s is not UTF-8 text", f.Path)
		}
		sum := sha256.Sum256([]byte(f.Source))
		e := File{Key: "f" + strconv.Itoa(i), Name: rename(f.Path), SHA256: hex.EncodeToString(sum[:]), Repo: f.Repo, URL: f.URL, Commit: f.Commit}
		m.Files = append(m.Files, e)
		data[e.Key] = f.Source
	}
	for k, v := range p.Loads {
		from, module, _ := strings.Cut(k, "|")
		m.Loads[rename(from)+"|"+module] = rename(v)
	}
	if len(m.Loads) == 0 {
		m.Loads = nil
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("bundle of %s: %v", p.Files[0].Path, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	data[ManifestKey] = string(b)
	sum := sha256.Sum256(b)
	out := &Bundle{Manifest: m, Data: data, Digest: "sha256:" + hex.EncodeToString(sum[:])}
	if n := out.Size(); n > MaxBytes {
		return nil, fmt.Errorf("bundle of %s: its %d files are %d bytes (%.2f MiB), over the %d bytes (1 MiB) a ConfigMap holds; split the runbook's modules or trim what it loads",
			p.Files[0].Path, len(m.Files), n, float64(n)/(1<<20), MaxBytes)
	}
	return out, nil
}

// localNames returns the renaming of the program's file names: local
// files (not @REPO//) relative to the directory that holds them all; a
// repository's file keeps its name.
func localNames(p *engine.Program) func(string) string {
	var root string
	first := true
	for _, f := range p.Files {
		if strings.HasPrefix(f.Path, "@") {
			continue
		}
		abs, err := filepath.Abs(f.Path)
		if err != nil {
			continue
		}
		d := filepath.Dir(abs)
		if first {
			root, first = d, false
			continue
		}
		for !within(root, d) {
			root = filepath.Dir(root)
		}
	}
	return func(name string) string {
		if name == "" || strings.HasPrefix(name, "@") || root == "" {
			return name
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			return name
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			return name
		}
		return filepath.ToSlash(rel)
	}
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

var (
	keyRE    = regexp.MustCompile(`^f(0|[1-9][0-9]{0,3})$`)
	repoRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	hexRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	segRE    = regexp.MustCompile(`^[A-Za-z0-9_.+@=,-]+$`)
)

// checkName checks a file name of a manifest: @REPO//PATH or PATH, PATH
// relative, clean, with no . or .. segment, ending in .star.
func checkName(name string) error {
	if len(name) > maxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("file name %q: longer than %d bytes or not UTF-8", trunc(name), maxNameLen)
	}
	rel := name
	if rest, ok := strings.CutPrefix(name, "@"); ok {
		repo, p, ok := strings.Cut(rest, "//")
		if !ok || !repoRE.MatchString(repo) {
			return fmt.Errorf("file name %q: want @REPO//path.star", name)
		}
		rel = p
	}
	if !strings.HasSuffix(rel, ".star") || path.IsAbs(rel) || path.Clean(rel) != rel {
		return fmt.Errorf("file name %q: want a clean relative path to a .star file", name)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "." || seg == ".." || !segRE.MatchString(seg) {
			return fmt.Errorf("file name %q: segment %q is not allowed (no . or .., letters, digits and ._+@=,- only)", name, seg)
		}
	}
	return nil
}

// check validates a manifest as Build makes them.
func (m *Manifest) check() error {
	if m.Version != 1 {
		return fmt.Errorf("manifest version %d: want 1 (a bundle of another kdiag version?)", m.Version)
	}
	if len(m.Files) == 0 || len(m.Files) > maxFiles {
		return fmt.Errorf("the manifest lists %d files: want 1 to %d", len(m.Files), maxFiles)
	}
	names := map[string]bool{}
	origins := map[string]File{}
	for i, f := range m.Files {
		if f.Key != "f"+strconv.Itoa(i) {
			return fmt.Errorf("file %d has key %q: want f%d", i+1, trunc(f.Key), i)
		}
		if err := checkName(f.Name); err != nil {
			return err
		}
		if names[f.Name] {
			return fmt.Errorf("file %s is listed twice", f.Name)
		}
		names[f.Name] = true
		if !hexRE.MatchString(f.SHA256) {
			return fmt.Errorf("file %s: sha256 %q is not 64 hex digits", f.Name, trunc(f.SHA256))
		}
		if f.Repo == "" && f.URL == "" && f.Commit == "" {
			continue
		}
		repo, _, _ := strings.Cut(strings.TrimPrefix(f.Name, "@"), "//")
		switch {
		case !strings.HasPrefix(f.Name, "@") || f.Repo != repo:
			return fmt.Errorf("file %s: repository %q is not the one its name says", f.Name, trunc(f.Repo))
		case !commitRE.MatchString(f.Commit):
			return fmt.Errorf("file %s: commit %q is not 40 hex digits", f.Name, trunc(f.Commit))
		case f.URL == "" || len(f.URL) > maxURLLen || strings.ContainsFunc(f.URL, isControl):
			return fmt.Errorf("file %s: bad repository URL", f.Name)
		}
		if o, ok := origins[repo]; ok && (o.URL != f.URL || o.Commit != f.Commit) {
			return fmt.Errorf("files %s and %s of repository %s name different commits or URLs", o.Name, f.Name, repo)
		}
		origins[repo] = f
	}
	if m.Runbook != m.Files[0].Name {
		return fmt.Errorf("runbook %q is not the first file %q", trunc(m.Runbook), m.Files[0].Name)
	}
	if len(m.Loads) > 4*maxFiles {
		return fmt.Errorf("%d load resolutions: at most %d", len(m.Loads), 4*maxFiles)
	}
	for k, v := range m.Loads {
		from, module, ok := strings.Cut(k, "|")
		if !ok || !names[from] || !names[v] || len(module) > maxNameLen || strings.ContainsFunc(module, isControl) {
			return fmt.Errorf("load %q -> %q: not between files of the bundle", trunc(k), trunc(v))
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
