package playbook

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults and bounds of a route's fanout: section.
const (
	DefaultFanoutMaxPods     = 10
	MaxFanoutPods            = 100
	DefaultFanoutConcurrency = 2
	MaxFanoutConcurrency     = 16
)

// The fanout over_max policies.
const (
	OverMaxRefuse = "refuse" // more pods than max_pods: nothing runs
	OverMaxFirst  = "first"  // run the first max_pods by name, record the rest as left out
)

// FanoutOneAtATime is the fanout mutations value that lets a route with
// mutations: allow fan out: one pod at a time, stopping at the first run
// that does not end ok.
const FanoutOneAtATime = "one-at-a-time"

// FanoutConfig is a route's fanout: section: the alert names a workload
// or a set of pods rather than one pod, and the route's runbook runs once
// for each pod, in the namespace the route's namespace param gives. Give
// one of Selector, Owner and ReplicasOf.
type FanoutConfig struct {
	// Selector maps label keys to value templates: the set is the pods
	// whose labels equal every rendered value (e.g. {app: "{{ .Labels.app }}"}).
	Selector map[string]string `yaml:"selector"`
	// Owner names a workload whose pods are the set.
	Owner *OwnerConfig `yaml:"owner"`
	// ReplicasOf is a template naming a pod: the set is the pods of the
	// pod's controller (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job).
	ReplicasOf string `yaml:"replicas_of"`
	// MaxPods bounds the set (default 10, at most 100).
	MaxPods int `yaml:"max_pods"`
	// OverMax is what a larger set gets: refuse (default: nothing runs)
	// or first (the first max_pods by name run; the run records the rest).
	OverMax string `yaml:"over_max"`
	// Concurrency is the set's runs at once (default 2, at most 16); never
	// two on one node.
	Concurrency int `yaml:"concurrency"`
	// Mutations must be one-at-a-time on a route with mutations: allow.
	Mutations string `yaml:"mutations"`
}

// OwnerConfig names a workload: its kind and a template of its name.
type OwnerConfig struct {
	// Kind is Deployment, StatefulSet, DaemonSet, ReplicaSet or Job.
	Kind string `yaml:"kind"`
	// Name is a template, e.g. "{{ .Labels.deployment }}".
	Name string `yaml:"name"`
}

// ownerKinds are the workload kinds a fanout owner may name.
var ownerKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

// fanout is a compiled FanoutConfig.
type fanout struct {
	selector    map[string]*template.Template
	ownerKind   string
	ownerName   *template.Template
	replicasOf  *template.Template
	maxPods     int
	truncate    bool
	concurrency int
	oneAtATime  bool
}

// SetTarget is what a fan-out route's alert named, rendered from the
// alert and checked: the namespace and one of a selector, an owner and a
// pod whose replicas are the set.
type SetTarget struct {
	Namespace  string `json:"namespace"`
	Selector   string `json:"selector,omitempty"`
	Owner      string `json:"owner,omitempty"`
	ReplicasOf string `json:"replicas_of,omitempty"`
}

// String says what the target names, e.g. "Deployment/web in namespace shop".
func (t SetTarget) String() string {
	var what string
	switch {
	case t.Selector != "":
		what = "pods " + t.Selector
	case t.Owner != "":
		what = t.Owner
	default:
		what = "the replicas of pod " + t.ReplicasOf
	}
	return what + " in namespace " + t.Namespace
}

// compileFanout checks and compiles route i's fanout: section, if any.
func compileFanout(c *Config, i int, errorf func(at []any, format string, args ...any) error) (*fanout, error) {
	rc := &c.Routes[i]
	fc := rc.Fanout
	if fc == nil {
		return nil, nil
	}
	at := func(parts ...any) []any { return append(p("fanout"), parts...) }
	f := &fanout{maxPods: fc.MaxPods, concurrency: fc.Concurrency, selector: map[string]*template.Template{}}
	n := 0
	if len(fc.Selector) > 0 {
		n++
	}
	if fc.Owner != nil {
		n++
	}
	if fc.ReplicasOf != "" {
		n++
	}
	if n != 1 {
		return nil, errorf(at(), "fanout: give one of selector (label key: value template), owner (kind and name) or replicas_of (a pod name template)")
	}
	for _, k := range slices.Sorted(maps.Keys(fc.Selector)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, errorf(at("selector", k), "fanout.selector: %q is not a label key: %s", k, strings.Join(errs, "; "))
		}
		t, err := compileTemplate("fanout.selector."+k, fc.Selector[k])
		if err != nil {
			return nil, errorf(at("selector", k), "%v", err)
		}
		f.selector[k] = t
	}
	if o := fc.Owner; o != nil {
		i := slices.IndexFunc(ownerKinds, func(k string) bool { return strings.EqualFold(k, o.Kind) })
		if i < 0 {
			return nil, errorf(at("owner", "kind"), "fanout.owner.kind %q: want one of %s", o.Kind, strings.Join(ownerKinds, ", "))
		}
		f.ownerKind = ownerKinds[i]
		if strings.TrimSpace(o.Name) == "" {
			return nil, errorf(at("owner"), "fanout.owner.name is required (e.g. \"{{ .Labels.deployment }}\")")
		}
		var err error
		if f.ownerName, err = compileTemplate("fanout.owner.name", o.Name); err != nil {
			return nil, errorf(at("owner", "name"), "%v", err)
		}
	}
	if fc.ReplicasOf != "" {
		var err error
		if f.replicasOf, err = compileTemplate("fanout.replicas_of", fc.ReplicasOf); err != nil {
			return nil, errorf(at("replicas_of"), "%v", err)
		}
	}
	switch {
	case f.maxPods == 0:
		f.maxPods = DefaultFanoutMaxPods
	case f.maxPods < 1 || f.maxPods > MaxFanoutPods:
		return nil, errorf(at("max_pods"), "fanout.max_pods must be 1 to %d, got %d", MaxFanoutPods, f.maxPods)
	}
	switch fc.OverMax {
	case "", OverMaxRefuse:
	case OverMaxFirst:
		f.truncate = true
	default:
		return nil, errorf(at("over_max"), "fanout.over_max: unknown policy %q (want refuse or first)", fc.OverMax)
	}
	switch fc.Mutations {
	case "":
		if rc.Mutations == MutationsAllow {
			return nil, errorf(at(), "fanout on a route with mutations: allow would apply fixes to many pods: set fanout.mutations: %s (one pod at a time, stopping at the first run that does not end ok), or use mutations: dry-run", FanoutOneAtATime)
		}
	case FanoutOneAtATime:
		if fc.Concurrency > 1 {
			return nil, errorf(at("concurrency"), "fanout.mutations: %s runs one pod at a time; drop fanout.concurrency %d", FanoutOneAtATime, fc.Concurrency)
		}
		f.oneAtATime, f.concurrency = true, 1
	default:
		return nil, errorf(at("mutations"), "fanout.mutations: unknown value %q (want %s)", fc.Mutations, FanoutOneAtATime)
	}
	switch {
	case f.concurrency == 0:
		f.concurrency = DefaultFanoutConcurrency
	case f.concurrency < 1 || f.concurrency > MaxFanoutConcurrency:
		return nil, errorf(at("concurrency"), "fanout.concurrency must be 1 to %d, got %d", MaxFanoutConcurrency, f.concurrency)
	}
	if _, ok := rc.Params["namespace"]; !ok {
		return nil, errorf(p("params"), "fanout needs params.namespace (e.g. \"{{ .Labels.namespace }}\"): the set's pods are looked up in that namespace only")
	}
	if _, ok := rc.Params["pod"]; ok {
		return nil, errorf(p("params", "pod"), "fanout gives each run its pod: drop params.pod")
	}
	return f, nil
}

// compileTemplate parses a template over TemplateData and checks it
// against an alert with no labels.
func compileTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("bad template: %v", err)
	}
	var zero TemplateData
	zero.Labels, zero.Annotations = map[string]string{}, map[string]string{}
	probe, _ := t.Clone()
	if err := probe.Option("missingkey=zero").Execute(io.Discard, zero); err != nil {
		return nil, fmt.Errorf("bad template: %v", err)
	}
	return t, nil
}

// maxFanoutValue bounds a rendered fanout value before it is checked.
const maxFanoutValue = 253

// target renders and checks what the alert names: the namespace from
// the rendered params, and the selector, owner or pod from the alert.
// Alert labels are hostile: every rendered value must be a label value
// or an object name, so that no value widens the selector or leaves the
// namespace.
func (f *fanout) target(route string, data TemplateData, params map[string]any) (*SetTarget, error) {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("route %q: fanout: "+format, append([]any{route}, args...)...)
	}
	ns, _ := params["namespace"].(string)
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, errorf("namespace %q is not a namespace name: %s", clip(ns), strings.Join(errs, "; "))
	}
	render := func(field string, t *template.Template) (string, error) {
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return "", errorf("%s: %v", field, err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	name := func(field string, t *template.Template) (string, error) {
		v, err := render(field, t)
		if err != nil {
			return "", err
		}
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			return "", errorf("%s %q is not an object name: %s", field, clip(v), strings.Join(errs, "; "))
		}
		return v, nil
	}
	tg := &SetTarget{Namespace: ns}
	switch {
	case len(f.selector) > 0:
		set := labels.Set{}
		for _, k := range slices.Sorted(maps.Keys(f.selector)) {
			v, err := render("selector."+k, f.selector[k])
			if err != nil {
				return nil, err
			}
			if v == "" {
				return nil, errorf("selector.%s is empty; an empty value would select pods without the label", k)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return nil, errorf("selector.%s %q is not a label value: %s", k, clip(v), strings.Join(errs, "; "))
			}
			set[k] = v
		}
		sel, err := labels.ValidatedSelectorFromSet(set)
		if err != nil {
			return nil, errorf("selector: %v", err)
		}
		tg.Selector = sel.String()
	case f.ownerName != nil:
		n, err := name("owner.name", f.ownerName)
		if err != nil {
			return nil, err
		}
		tg.Owner = f.ownerKind + "/" + n
	default:
		n, err := name("replicas_of", f.replicasOf)
		if err != nil {
			return nil, err
		}
		tg.ReplicasOf = n
	}
	return tg, nil
}

// clip shortens a hostile value for an error message.
func clip(s string) string {
	if len(s) > maxFanoutValue {
		return s[:maxFanoutValue] + "…"
	}
	return s
}
