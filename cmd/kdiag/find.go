package main

import (
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/runbooks"
)

// runbookRef is a runbook found in a repository.
type runbookRef struct {
	Name   string // the runbook's file name without .star
	Module string // what to pass to the loader
	Repo   string // "@kdiag" or "@NAME"
}

// findRunbooks lists the runbooks of the built-in library and the
// repositories: top-level .star files that are not tests.
func findRunbooks(g *globalFlags) []runbookRef {
	var refs []runbookRef
	add := func(repo string, fsys fs.FS) {
		entries, _ := fs.ReadDir(fsys, ".")
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".star") || strings.HasSuffix(n, "_test.star") {
				continue
			}
			refs = append(refs, runbookRef{Name: strings.TrimSuffix(n, ".star"), Module: "@" + repo + "//" + n, Repo: "@" + repo})
		}
	}
	add(engine.BuiltinRepo, runbooks.FS)
	dirs := g.repoDirs()
	names := make([]string, 0, len(dirs))
	for n := range dirs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		add(n, os.DirFS(dirs[n]))
	}
	return refs
}

// resolveRunbook turns a command-line runbook argument into a loader
// module name: a path to a .star file, an @REPO//file.star module, or a
// runbook name looked up in the repositories (later --repo first, then
// the built-in library).
func resolveRunbook(g *globalFlags, arg string) (string, error) {
	if strings.HasPrefix(arg, "@") {
		return arg, nil
	}
	if strings.HasSuffix(arg, ".star") || strings.ContainsRune(arg, os.PathSeparator) {
		if _, err := os.Stat(arg); err != nil {
			return "", &engine.UsageError{Err: errNoRunbook(arg, "no such file")}
		}
		return arg, nil
	}
	refs := findRunbooks(g)
	// Repositories override the built-in library.
	for i := len(refs) - 1; i >= 0; i-- {
		if refs[i].Name == arg {
			return refs[i].Module, nil
		}
	}
	var known []string
	for _, r := range refs {
		known = append(known, r.Name)
	}
	return "", &engine.UsageError{Err: errNoRunbook(arg, "no runbook by that name (known: "+strings.Join(known, ", ")+"; kdiag list shows them)")}
}

type runbookError struct{ arg, why string }

func (e *runbookError) Error() string { return "runbook " + e.arg + ": " + e.why }

func errNoRunbook(arg, why string) error { return &runbookError{arg: path.Clean(arg), why: why} }
