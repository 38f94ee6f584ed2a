package engine

import (
	"context"
	"maps"
	"slices"

	"go.starlark.net/syntax"
)

// Describe loads a runbook without running it and returns its metadata,
// including the built-ins its files mention, grouped by effect.
func Describe(path string, opts Options) (*Runbook, error) {
	r := newRun(context.Background(), opts)
	rb, _, err := r.loadMain(path)
	if err != nil {
		return rb, err
	}
	used := map[Effect]map[string]bool{}
	for _, f := range r.files {
		file, err := FileOptions.Parse(f.Path, f.Source, 0)
		if err != nil {
			continue
		}
		syntax.Walk(file, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok {
				if s, ok := r.specs[id.Name]; ok {
					if used[s.Effect] == nil {
						used[s.Effect] = map[string]bool{}
					}
					used[s.Effect][s.Name] = true
				}
			}
			return true
		})
	}
	rb.Builtins = map[Effect][]string{}
	for eff, names := range used {
		rb.Builtins[eff] = slices.Sorted(maps.Keys(names))
	}
	return rb, nil
}
