package playbook

import (
	"fmt"
	"strings"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
)

// prepare gives a run about to start the server's repositories as they
// are now (a Loader of their current commits) and, for an executor that
// takes bundles, the bundle of the files the runbook loads from them.
func (s *Server) prepare(req *RunRequest) error {
	req.Loader = s.loader.Load()
	if !s.bundles {
		return nil
	}
	b, err := s.bundleOf(req.Runbook, req.Loader)
	if err != nil {
		return fmt.Errorf("executor %s: %v", s.exec.Name(), err)
	}
	req.Bundle = b
	return nil
}

// bundleOf loads module with l and bundles the files it read; nil for a
// runbook of the built-in library, which the Job's image holds.
func (s *Server) bundleOf(module string, l *engine.Loader) (*bundle.Bundle, error) {
	if strings.HasPrefix(module, "@"+engine.BuiltinRepo+"//") {
		return nil, nil
	}
	prog, err := engine.Load(module, engine.Options{Specs: s.specs, Loader: l})
	if err != nil {
		return nil, fmt.Errorf("runbook %s does not load: %v", module, err)
	}
	return bundle.Build(prog)
}
