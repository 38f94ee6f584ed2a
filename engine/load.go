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
	// Origins say where pinned repositories came from, by name; their
	// files are recorded with it.
	Origins map[string]Origin
}

// Origin is the git remote and commit a repository's tree was pinned to.
type Origin struct {
	URL, Commit string
}

// origin returns the repository name and origin of a canonical file name
// "@NAME//path", if NAME has one.
func (l *Loader) origin(name string) (string, Origin, bool) {
	rest, ok := strings.CutPrefix(name, "@")
	if !ok {
		return "", Origin{}, false
	}
	repo, _, ok := strings.Cut(rest, "//")
	if !ok {
		return "", Origin{}, false
	}
	o, ok := l.Origins[repo]
	return repo, o, ok
}

// Resolve returns the canonical name of module as loaded from the file
// named from ("" for the main runbook). A module loaded from a file may
// not leave that file's repository (the nearest ancestor directory holding
// RepoManifest, or the file's own directory when there is none), nor a
// named repository's directory, symlinks included.
func (l *Loader) Resolve(from, module string) (string, error) {
	return l.resolveFor("", from, module)
}

// resolveFor is Resolve within the run of the runbook named main: with no
// repository, loads are confined to main's directory.
func (l *Loader) resolveFor(main, from, module string) (string, error) {
	if l.Loads != nil {
		if name, ok := l.Loads[from+"|"+module]; ok {
			if _, recorded := l.Recorded[name]; recorded || from == "" {
				return name, nil
			}
			if err := l.confine(main, from, module, name); err != nil {
				return "", err
			}
			return name, nil
		}
	}
	name, err := l.resolve(from, module)
	if err != nil || from == "" {
		return name, err
	}
	if err := l.confine(main, from, module, name); err != nil {
		return "", err
	}
	return name, nil
}

// confine checks that name, which load(module) in from resolved to, lies
// inside the repository it may read: a named repository's directory (the
// embedded library is an fs.FS and cannot be left), or from's repository
// root, or main's directory when there is no repository.
func (l *Loader) confine(main, from, module, name string) error {
	what := fmt.Sprintf("load(%q) in %s", module, from)
	var root, kind string
	switch {
	case strings.HasPrefix(name, "@"):
		repo, rest, _ := strings.Cut(name[1:], "//")
		if rest == ".." || strings.HasPrefix(rest, "../") || path.IsAbs(rest) {
			return fmt.Errorf("%s: %s leaves the repository @%s; loads may not leave their repository", what, name, repo)
		}
		if repo == BuiltinRepo {
			return nil
		}
		root, kind = l.Repos[repo], "repository @"+repo
		name = filepath.Join(root, filepath.FromSlash(rest))
	default:
		var ok bool
		root, ok = findRepoRoot(from)
		kind = "repository root " + root + " (it holds " + RepoManifest + ")"
		if !ok {
			base := from
			if main != "" && !strings.HasPrefix(main, "@") {
				base = main
			}
			root, kind = filepath.Dir(base), "runbook directory "+filepath.Dir(base)+" (no "+RepoManifest+" above it)"
		}
	}
	absRoot, err1 := filepath.Abs(root)
	absName, err2 := filepath.Abs(name)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%s: cannot make %s absolute", what, name)
	}
	if !inside(absRoot, absName) {
		return fmt.Errorf("%s: %s is outside the %s; loads may not leave it (copy the module into it, or add its repository with --repo and load @NAME//path)", what, absName, kind)
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return nil // no root on disk: reading the module fails with its own error
	}
	realName, err := filepath.EvalSymlinks(absName)
	if err != nil {
		return nil // a missing module: Read says so
	}
	if !inside(realRoot, realName) {
		return fmt.Errorf("%s: %s is a symlink to %s, outside the %s; loads may not leave it", what, absName, realName, kind)
	}
	return nil
}

// inside reports whether the absolute, clean path p is root or below it.
func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func (l *Loader) resolve(from, module string) (string, error) {
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
	d, ok := findRepoRoot(from)
	if !ok {
		return filepath.Dir(from)
	}
	if rel, err := filepath.Rel(mustGetwd(), d); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return d
}

// findRepoRoot returns the absolute nearest ancestor directory of the file
// from that holds RepoManifest.
func findRepoRoot(from string) (string, bool) {
	abs, err := filepath.Abs(filepath.Dir(from))
	if err != nil {
		return "", false
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, RepoManifest)); err == nil {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
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
