package playbook

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// compileRoutes compiles every route and checks it against the built-ins
// and its runbook: the runbook resolves and loads, the params are the
// runbook's and cover its required ones, and allow_builtins names write
// built-ins.
func compileRoutes(c *Config, specs []*engine.Spec, l *engine.Loader) ([]*route, error) {
	writes := map[string]bool{}
	var writeNames []string
	for _, s := range specs {
		if s.Effect == engine.Write {
			writes[s.Name] = true
			writeNames = append(writeNames, s.Name)
		}
	}
	var out []*route
	for i := range c.Routes {
		r, err := compileRoute(c, i)
		if err != nil {
			return nil, err
		}
		rc := &c.Routes[i]
		errorf := func(at []any, format string, args ...any) error {
			return c.errorf(append(p("routes", i), at...), "route %q: "+format, append([]any{r.name}, args...)...)
		}
		for j, b := range rc.AllowBuiltins {
			if !writes[b] {
				return nil, errorf(p("allow_builtins", j), "allow_builtins: %q is not a write built-in (write built-ins: %s)", b, strings.Join(writeNames, ", "))
			}
		}
		if r.module, err = l.ResolveRunbook(rc.Runbook, filepath.Dir(c.Path)); err != nil {
			return nil, errorf(p("runbook"), "%v", err)
		}
		if r.runbook, err = engine.Describe(r.module, engine.Options{Specs: specs, Loader: l}); err != nil {
			return nil, errorf(p("runbook"), "runbook %s does not load: %v", rc.Runbook, err)
		}
		for _, k := range slices.Sorted(maps.Keys(rc.Params)) {
			if _, ok := r.runbook.Param(k); !ok {
				return nil, errorf(p("params", k), "runbook %s has no param %q; %s", r.runbook.Name, k, r.runbook.ParamList())
			}
		}
		if r.fanout != nil {
			if _, ok := r.runbook.Param("pod"); !ok {
				return nil, errorf(p("fanout"), "fanout gives each run pod= and namespace=, and runbook %s has no pod param", r.runbook.Name)
			}
			if _, ok := r.runbook.Param("namespace"); !ok {
				return nil, errorf(p("fanout"), "fanout gives each run pod= and namespace=, and runbook %s has no namespace param", r.runbook.Name)
			}
		}
		for _, d := range r.runbook.Params {
			if _, ok := rc.Params[d.Name]; d.Required && !ok && (r.fanout == nil || d.Name != "pod") {
				return nil, errorf(p("params"), "runbook %s needs param %q; add it under params: (e.g. %s: \"{{ .Labels.%s }}\")", r.runbook.Name, d.Name, d.Name, d.Name)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
