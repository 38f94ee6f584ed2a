package playbook

import (
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// route is a compiled RouteConfig.
type route struct {
	name    string
	index   int
	match   map[string]string
	matchRE map[string]*regexp.Regexp
	params  map[string]*template.Template
	policy  Policy
	timeout time.Duration
	fanout  *fanout // nil: one run for the pod the alert names

	// Set by New once the runbook is resolved.
	module  string
	runbook *engine.Runbook
}

// TemplateData is what a route's param templates see: the alert's fields
// ({{ .Labels.pod }}, {{ .Annotations.summary }}, {{ .Fingerprint }},
// {{ .StartsAt }}) and the webhook's ({{ .Receiver }}, {{ .CommonLabels.x }}).
type TemplateData struct {
	Alert
	Receiver          string
	ExternalURL       string
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
}

// compileRoute checks and compiles route i of c.
func compileRoute(c *Config, i int) (*route, error) {
	rc := &c.Routes[i]
	errorf := func(at []any, format string, args ...any) error {
		return c.errorf(append(p("routes", i), at...), "route %q: "+format, append([]any{rc.Name}, args...)...)
	}
	r := &route{name: rc.Name, index: i, match: rc.Match, matchRE: map[string]*regexp.Regexp{}, params: map[string]*template.Template{}, timeout: rc.Timeout}
	if strings.TrimSpace(rc.Runbook) == "" {
		return nil, errorf(nil, "runbook is required (a runbook name such as readiness-probe-failing, or a .star path)")
	}
	for k, expr := range rc.MatchRE {
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return nil, errorf(p("match_re", k), "match_re.%s: %v", k, err)
		}
		r.matchRE[k] = re
	}
	var zero TemplateData
	zero.Labels, zero.Annotations = map[string]string{}, map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(rc.Params)) {
		t, err := template.New("params." + k).Funcs(templateFuncs).Option("missingkey=error").Parse(rc.Params[k])
		if err != nil {
			return nil, errorf(p("params", k), "bad template: %v", err)
		}
		probe, _ := t.Clone()
		if err := probe.Option("missingkey=zero").Execute(io.Discard, zero); err != nil {
			return nil, errorf(p("params", k), "bad template: %v", err)
		}
		r.params[k] = t
	}
	if rc.Timeout < 0 {
		return nil, errorf(p("timeout"), "timeout must not be negative, got %s", rc.Timeout)
	}
	switch rc.Mutations {
	case MutationsNever, MutationsDryRun:
		if len(rc.AllowBuiltins) > 0 {
			return nil, errorf(p("allow_builtins"), "allow_builtins needs mutations: allow (mutations is %s)", rc.Mutations)
		}
	case MutationsAllow:
		if len(rc.AllowBuiltins) == 0 {
			return nil, errorf(p("mutations"), "mutations: allow needs allow_builtins, the write built-ins this route may run (e.g. [patch_configmap, restart])")
		}
	default:
		return nil, errorf(p("mutations"), "mutations: unknown policy %q (want never, dry-run or allow)", rc.Mutations)
	}
	r.policy = Policy{Route: rc.Name, Mutations: rc.Mutations, AllowBuiltins: append([]string(nil), rc.AllowBuiltins...)}
	var err error
	if r.fanout, err = compileFanout(c, i, errorf); err != nil {
		return nil, err
	}
	return r, nil
}

// matches reports whether the alert's labels satisfy the route.
func (r *route) matches(labels map[string]string) bool {
	for k, v := range r.match {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range r.matchRE {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// render executes the param templates over the alert. A label the
// template names but the alert lacks is an error.
func (r *route) render(data TemplateData) (map[string]any, error) {
	out := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(r.params)) {
		var b strings.Builder
		if err := r.params[k].Execute(&b, data); err != nil {
			return nil, fmt.Errorf("route %q: param %s: %v", r.name, k, err)
		}
		out[k] = strings.TrimSpace(b.String())
	}
	return out, nil
}
