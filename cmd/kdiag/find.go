package main

import "github.com/kdiag/kdiag/engine"

// resolveRunbook turns a command-line runbook argument into a loader
// module name with engine's Loader.ResolveRunbook (as kdiag serve's
// routes do): a path to a .star file, an @REPO//file.star module, or a
// runbook name.
func resolveRunbook(g *globalFlags, arg string) (string, error) {
	m, err := g.loader().ResolveRunbook(arg, "")
	if err != nil {
		return "", &engine.UsageError{Err: err}
	}
	return m, nil
}
