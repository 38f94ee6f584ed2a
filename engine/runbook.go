package engine

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
)

// ParamDecl is a runbook parameter as declared with param(...).
type ParamDecl struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Doc      string `json:"doc,omitempty"`
	Required bool   `json:"required"`
	Default  any    `json:"default,omitempty"`
}

// Runbook is a runbook's metadata as declared with runbook(...).
type Runbook struct {
	Path    string      `json:"path"`
	Name    string      `json:"name"`
	Summary string      `json:"summary"`
	Doc     string      `json:"doc,omitempty"`
	Params  []ParamDecl `json:"params"`
	// Builtins are the built-ins the runbook's files mention, by effect.
	Builtins map[Effect][]string `json:"builtins,omitempty"`
}

// Param returns the declaration of the named parameter.
func (rb *Runbook) Param(name string) (ParamDecl, bool) {
	for _, p := range rb.Params {
		if p.Name == name {
			return p, true
		}
	}
	return ParamDecl{}, false
}

// ParamList renders the parameters for error messages.
func (rb *Runbook) ParamList() string {
	if len(rb.Params) == 0 {
		return "it takes no params"
	}
	var parts []string
	for _, p := range rb.Params {
		s := p.Name + " (" + p.Type
		if p.Required {
			s += ", required"
		} else if p.Default != nil {
			s += fmt.Sprintf(", default %v", p.Default)
		}
		parts = append(parts, s+")")
	}
	return "its params: " + strings.Join(parts, ", ")
}

var paramTypes = []string{"string", "int", "float", "bool", "duration", "list"}

// paramBuiltin implements param(name, type="string", default=?, doc="").
func paramBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, typ, doc string = "", "string", ""
	var def starlark.Value
	var required starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "type?", &typ, "default?", &def, "required?", &required, "doc?", &doc); err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, fmt.Errorf("param: %q is not a valid parameter name (use snake_case)", name)
	}
	if !contains(paramTypes, typ) {
		return nil, fmt.Errorf("param %q: unknown type %q (types: %s)", name, typ, strings.Join(paramTypes, ", "))
	}
	d := ParamDecl{Name: name, Type: typ, Doc: doc, Required: def == nil}
	if req, ok := required.(starlark.Bool); ok {
		d.Required = bool(req)
	}
	if def != nil && def != starlark.None {
		g, err := ToGo(def)
		if err != nil {
			return nil, fmt.Errorf("param %q: default: %v", name, err)
		}
		if d.Default, err = coerceParam(d, g); err != nil {
			return nil, fmt.Errorf("param %q: default: %v", name, err)
		}
	}
	return &paramValue{d}, nil
}

type paramValue struct{ decl ParamDecl }

func (p *paramValue) String() string        { return "param(" + strconv.Quote(p.decl.Name) + ")" }
func (p *paramValue) Type() string          { return "param" }
func (p *paramValue) Freeze()               {}
func (p *paramValue) Truth() starlark.Bool  { return true }
func (p *paramValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: param") }

// runbookBuiltin returns runbook(name, summary, doc="", params=[]), which
// stores the declaration in *out.
func runbookBuiltin(out **Runbook, path string) *starlark.Builtin {
	return starlark.NewBuiltin("runbook", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if *out != nil {
			return nil, fmt.Errorf("runbook: declared twice")
		}
		rb := &Runbook{Path: path}
		var params *starlark.List
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &rb.Name, "summary", &rb.Summary, "doc?", &rb.Doc, "params?", &params); err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for i := 0; params != nil && i < params.Len(); i++ {
			pv, ok := params.Index(i).(*paramValue)
			if !ok {
				return nil, fmt.Errorf("runbook: params[%d] is a %s, want param(...)", i, params.Index(i).Type())
			}
			if seen[pv.decl.Name] {
				return nil, fmt.Errorf("runbook: param %q declared twice", pv.decl.Name)
			}
			seen[pv.decl.Name] = true
			rb.Params = append(rb.Params, pv.decl)
		}
		*out = rb
		return starlark.None, nil
	})
}

// BindParams checks raw values (strings from -p, typed values from a
// params file) against the runbook's declarations and fills defaults.
func BindParams(rb *Runbook, raw map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		d, ok := rb.Param(k)
		if !ok {
			return nil, &UsageError{fmt.Errorf("%s: unknown param %q; %s", rb.Path, k, rb.ParamList())}
		}
		v, err := coerceParam(d, raw[k])
		if err != nil {
			return nil, &UsageError{fmt.Errorf("%s: param %q: %v", rb.Path, k, err)}
		}
		out[k] = v
	}
	for _, d := range rb.Params {
		if _, ok := out[d.Name]; ok {
			continue
		}
		if d.Required {
			return nil, &UsageError{fmt.Errorf("%s: missing required param %q (pass -p %s=VALUE); %s", rb.Path, d.Name, d.Name, rb.ParamList())}
		}
		out[d.Name] = d.Default
	}
	return out, nil
}

// coerceParam converts v to the declared type; strings (from -p) are
// parsed.
func coerceParam(d ParamDecl, v any) (any, error) {
	s, isString := v.(string)
	switch d.Type {
	case "string":
		switch x := v.(type) {
		case string:
			return x, nil
		case int64, float64, bool:
			return fmt.Sprint(x), nil
		case int:
			return strconv.Itoa(x), nil
		}
	case "int":
		switch x := v.(type) {
		case int64:
			return x, nil
		case int:
			return int64(x), nil
		case float64:
			if x == float64(int64(x)) {
				return int64(x), nil
			}
		}
		if isString {
			i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("want an int, got %q", s)
			}
			return i, nil
		}
	case "float":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		case int:
			return float64(x), nil
		}
		if isString {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("want a float, got %q", s)
			}
			return f, nil
		}
	case "bool":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		if isString {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("want true or false, got %q", s)
			}
			return b, nil
		}
	case "duration":
		if isString {
			if _, err := parseDuration(s); err != nil {
				return nil, fmt.Errorf("want a duration like 30s or 2m, got %q", s)
			}
			return s, nil
		}
	case "list":
		switch x := v.(type) {
		case []any:
			return x, nil
		case string:
			var out []any
			for _, part := range strings.Split(x, ",") {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %s", d.Type, TypeName(v))
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' && i > 0) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
