package main

import (
	"os"
	"path"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// resolveRunbook turns a command-line runbook argument into a loader
// module name: a path to a .star file, an @REPO//file.star module, or a
// runbook name looked up in the repositories and the built-in library.
func resolveRunbook(g *globalFlags, arg string) (string, error) {
	if strings.HasPrefix(arg, "@") {
		return arg, nil
	}
	if strings.HasSuffix(arg, ".star") || strings.ContainsRune(arg, os.PathSeparator) {
		if _, err := os.Stat(arg); err != nil {
			return "", &engine.UsageError{Err: &runbookError{arg: path.Clean(arg), why: "no such file"}}
		}
		return arg, nil
	}
	m, err := g.loader().Find(arg)
	if err != nil {
		return "", &engine.UsageError{Err: err}
	}
	return m, nil
}

type runbookError struct{ arg, why string }

func (e *runbookError) Error() string { return "runbook " + e.arg + ": " + e.why }
