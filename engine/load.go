package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// BuiltinRepo is the name of the runbook library embedded in the binary:
// load("@kdiag//lib/pods.star", ...).
const BuiltinRepo = "kdiag"

// RepoManifest is the file that marks the root of a runbook repository;
// load("//lib/x.star") resolves against the nearest ancestor holding it.
const RepoManifest = "kdiag.yaml"

// Loader resolves and reads runbook files and modules. Module names are
// "@NAME//path" for a named repository (NAME "kdiag" is the embedded
// library), "//path" for the root of the loading file's repository, and a
// path relative to the loading file otherwise.
type Loader struct {
	// Builtin is the embedded library (runbooks/).
	Builtin fs.FS
	// Repos maps repository names to directories.
	Repos map[string]string
	// Recorded holds sources and load resolutions from a transcript; when
	// set, files are read from it before the disk.
	Recorded map[string]string
	// Loads maps "from|module" to the name it resolved to when recorded.
	Loads map[string]string
	// DiskFallback lets a replaying loader read files the transcript does
	// not hold (an edited runbook that loads a new module).
	DiskFallback bool
}

// Resolve returns the canonical name of module as loaded from the file
// named from ("" for the main runbook).
func (l *Loader) Resolve(from, module string) (string, error) {
	if l.Loads != nil {
		if name, ok := l.Loads[from+"|"+module]; ok {
			return name, nil
		}
	}
	if !strings.HasSuffix(module, ".star") {
		return "", fmt.Errorf("load: module %q must name a .star file", module)
	}
	switch {
	case strings.HasPrefix(module, "@"):
		repo, rest, ok := strings.Cut(module[1:], "//")
		if !ok || repo == "" || rest == "" {
			return "", fmt.Errorf("load: bad module name %q: want @REPO//path/file.star", module)
		}
		if repo != BuiltinRepo {
			if _, ok := l.Repos[repo]; !ok {
				return "", fmt.Errorf("load: unknown repository @%s in %q (configured: %s); add it with --repo or KDIAG_REPOS", repo, module, l.repoNames())
			}
		}
		return "@" + repo + "//" + path.Clean(rest), nil
	case strings.HasPrefix(module, "//"):
		if repo, _, ok := strings.Cut(from, "//"); ok && strings.HasPrefix(from, "@") {
			return repo + "//" + path.Clean(module[2:]), nil
		}
		root := l.repoRoot(from)
		return filepath.Join(root, filepath.FromSlash(module[2:])), nil
	}
	if from == "" {
		return filepath.Clean(module), nil
	}
	if repo, rest, ok := strings.Cut(from, "//"); ok && strings.HasPrefix(from, "@") {
		return repo + "//" + path.Join(path.Dir(rest), module), nil
	}
	return filepath.Join(filepath.Dir(from), filepath.FromSlash(module)), nil
}

// Read returns the source of the file with the canonical name.
func (l *Loader) Read(name string) ([]byte, error) {
	if src, ok := l.Recorded[name]; ok {
		return []byte(src), nil
	}
	if l.Recorded != nil && !l.DiskFallback {
		return nil, fmt.Errorf("%s: not in the transcript", name)
	}
	if strings.HasPrefix(name, "@") {
		repo, rest, _ := strings.Cut(name[1:], "//")
		if repo == BuiltinRepo {
			if l.Builtin == nil {
				return nil, fmt.Errorf("%s: no built-in library in this build", name)
			}
			b, err := fs.ReadFile(l.Builtin, rest)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such file in the built-in library (kdiag list shows what it has)", name)
			}
			return b, err
		}
		dir, ok := l.Repos[repo]
		if !ok {
			return nil, fmt.Errorf("%s: unknown repository @%s", name, repo)
		}
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(rest)))
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file", name)
	}
	return b, err
}

// repoRoot returns the nearest ancestor of the file holding RepoManifest,
// or the file's own directory.
func (l *Loader) repoRoot(from string) string {
	dir := filepath.Dir(from)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, RepoManifest)); err == nil {
			if rel, err := filepath.Rel(mustGetwd(), d); err == nil && !strings.HasPrefix(rel, "..") {
				return rel
			}
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func (l *Loader) repoNames() string {
	names := []string{"@" + BuiltinRepo}
	for n := range l.Repos {
		names = append(names, "@"+n)
	}
	return strings.Join(names, ", ")
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
