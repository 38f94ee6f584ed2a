// Package repos fetches runbook repositories from git, pins each to a
// commit and a content digest in a lock file, and serves the pinned trees
// from a local cache, so that "the platform team's runbooks at v1.4.0" are
// the same files on every laptop, in CI and in kdiag serve, offline too.
//
// It drives the git command-line tool rather than a Go implementation of
// git: git already knows the user's credentials (credential helpers, ssh
// agent and config, proxies), speaks file://, https and ssh, and keeps
// kdiag free of a large dependency. Only adding and updating a repository
// needs git; runs read the cached trees, whose digest is checked each time.
package repos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// LockName is the file name of a project-level lock file, which a team
// commits next to its playbooks.
const LockName = "kdiag.lock"

// Entry is one pinned repository of a lock file.
type Entry struct {
	// Name is how runbooks load from it: @NAME//path.
	Name string `yaml:"name"`
	// URL is the git remote: file://, https:// or ssh (git@host:path).
	URL string `yaml:"url"`
	// Ref is what was asked for: a tag, a branch or a commit ("" is the
	// remote's default branch).
	Ref string `yaml:"ref,omitempty"`
	// RefKind is tag, branch, commit or head.
	RefKind string `yaml:"ref_kind"`
	// Commit is the pinned commit.
	Commit string `yaml:"commit"`
	// Digest is the sha256 of the pinned tree's files (see Digest).
	Digest string `yaml:"digest"`
	// Fetched is when the commit was pinned.
	Fetched time.Time `yaml:"fetched"`
}

// Lock is a lock file: the pinned repositories, by name.
type Lock struct {
	// Path is where the lock is read from and written to.
	Path string `yaml:"-"`
	// Repos are the entries, sorted by name.
	Repos []Entry `yaml:"repos"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// refRE is what a ref may look like: a tag, a branch or a commit, never
// an option (a lock file may come from someone else).
var refRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$`)

// ReadLock reads the lock file at path; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	l := &Lock{Path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: reading the lock file: %v", err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("repo: lock file %s is larger than 1 MiB", path)
	}
	if err := yaml.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("repo: lock file %s: %v", path, err)
	}
	for i, e := range l.Repos {
		if !nameRE.MatchString(e.Name) || !commitRE.MatchString(e.Commit) || e.URL == "" || strings.HasPrefix(e.URL, "-") || len(e.Digest) != 71 || e.Ref != "" && !refRE.MatchString(e.Ref) {
			return nil, fmt.Errorf("repo: lock file %s: entry %d (%q) is incomplete or malformed: want a name, a url, a 40-hex commit and a sha256: digest; re-add the repository", path, i+1, e.Name)
		}
	}
	return l, nil
}

// Write saves the lock, sorted by name, atomically.
func (l *Lock) Write() error {
	sort.Slice(l.Repos, func(i, j int) bool { return l.Repos[i].Name < l.Repos[j].Name })
	b, err := yaml.Marshal(l)
	if err != nil {
		return err
	}
	b = append([]byte("# kdiag runbook repositories, pinned (kdiag repo add/update/remove).\n"), b...)
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return fmt.Errorf("repo: %v", err)
	}
	tmp := l.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("repo: writing the lock file: %v", err)
	}
	return os.Rename(tmp, l.Path)
}

// Get returns the entry named name.
func (l *Lock) Get(name string) (*Entry, bool) {
	for i := range l.Repos {
		if l.Repos[i].Name == name {
			return &l.Repos[i], true
		}
	}
	return nil, false
}

// remove drops the entry named name.
func (l *Lock) remove(name string) bool {
	for i := range l.Repos {
		if l.Repos[i].Name == name {
			l.Repos = append(l.Repos[:i], l.Repos[i+1:]...)
			return true
		}
	}
	return false
}

// DefaultLockPath is ./kdiag.lock when it exists (a project's lock), else
// the user's lock in configDir, or when that is "" in
// $XDG_CONFIG_HOME/kdiag (~/.config/kdiag).
func DefaultLockPath(configDir string) string {
	if _, err := os.Stat(LockName); err == nil {
		abs, _ := filepath.Abs(LockName)
		return abs
	}
	if configDir == "" {
		if d, err := os.UserConfigDir(); err == nil {
			configDir = filepath.Join(d, "kdiag")
		} else {
			configDir = filepath.Join(os.TempDir(), "kdiag-config")
		}
	}
	return filepath.Join(configDir, LockName)
}

// DefaultCacheDir is $XDG_CACHE_HOME/kdiag/repos (~/.cache/kdiag/repos).
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kdiag", "repos")
	}
	return filepath.Join(os.TempDir(), "kdiag-cache", "repos")
}
