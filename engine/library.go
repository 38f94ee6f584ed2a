package engine

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// RunbookRef is a runbook found in a repository: a top-level .star file
// that is not a test.
type RunbookRef struct {
	// Name is the file name without .star.
	Name string `json:"name"`
	// Module is what to load: @REPO//NAME.star.
	Module string `json:"module"`
	// Repo is @kdiag for the built-in library, @NAME for a repository.
	Repo string `json:"repo"`
}

// Runbooks lists the runbooks of the built-in library, then of each
// repository in name order.
func (l *Loader) Runbooks() []RunbookRef {
	var refs []RunbookRef
	add := func(repo string, fsys fs.FS) {
		entries, _ := fs.ReadDir(fsys, ".")
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".star") || strings.HasSuffix(n, "_test.star") {
				continue
			}
			refs = append(refs, RunbookRef{Name: strings.TrimSuffix(n, ".star"), Module: "@" + repo + "//" + n, Repo: "@" + repo})
		}
	}
	if l.Builtin != nil {
		add(BuiltinRepo, l.Builtin)
	}
	for _, name := range l.repoOrder() {
		add(name, os.DirFS(l.Repos[name]))
	}
	return refs
}

// ResolveRunbook turns a runbook reference, as kdiag's command line and
// a playbook route take it, into a loader module: an @REPO//file.star
// module as is, a path to a .star file (or any reference with a slash;
// a relative one is taken from dir when dir is set), or a runbook name
// looked up with Find.
func (l *Loader) ResolveRunbook(ref, dir string) (string, error) {
	if strings.HasPrefix(ref, "@") {
		return ref, nil
	}
	if strings.HasSuffix(ref, ".star") || strings.ContainsRune(ref, '/') {
		p := ref
		if dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("runbook %s: no such file", filepath.Clean(p))
		}
		return p, nil
	}
	return l.Find(ref)
}

// Find returns the module of the runbook called name: a repository's
// overrides the built-in library's, and of two repositories the later in
// name order wins.
func (l *Loader) Find(name string) (string, error) {
	refs := l.Runbooks()
	for i := len(refs) - 1; i >= 0; i-- {
		if refs[i].Name == name {
			return refs[i].Module, nil
		}
	}
	var known []string
	seen := map[string]bool{}
	for _, r := range refs {
		if !seen[r.Name] {
			seen[r.Name] = true
			known = append(known, r.Name)
		}
	}
	sort.Strings(known)
	return "", fmt.Errorf("runbook %s: no runbook by that name (known: %s; kdiag list shows them)", name, strings.Join(known, ", "))
}

func (l *Loader) repoOrder() []string {
	return slices.Sorted(maps.Keys(l.Repos))
}
