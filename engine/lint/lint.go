// Package lint checks runbooks without running them: calls to built-ins
// with unknown keyword arguments or too many positional ones, params
// without docs, params the runbook never reads, and write built-ins that
// can run before the runbook has recorded any finding.
package lint

import (
	"fmt"
	"sort"

	"github.com/kdiag/kdiag/engine"
	"go.starlark.net/syntax"
)

// Problem is one lint finding, with its position.
type Problem struct {
	Pos syntax.Position
	Msg string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.Pos, p.Msg) }

// Runbook lints the runbook at path (as the loader names it).
func Runbook(path string, opts engine.Options) ([]Problem, error) {
	rb, err := engine.Describe(path, opts)
	if err != nil {
		return nil, err
	}
	src, err := opts.Loader.Read(rb.Path)
	if err != nil {
		return nil, err
	}
	f, err := engine.FileOptions.Parse(rb.Path, src, 0)
	if err != nil {
		return nil, err
	}
	specs := map[string]*engine.Spec{}
	for _, s := range opts.Specs {
		specs[s.Name] = s
	}
	var out []Problem
	out = append(out, checkCalls(f, specs)...)
	out = append(out, checkParams(f, rb)...)
	out = append(out, checkWrites(f, specs)...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pos.Line < out[j].Pos.Line })
	return out, nil
}

// checkCalls reports unknown keyword arguments and surplus positional
// arguments in direct calls of built-ins.
func checkCalls(f *syntax.File, specs map[string]*engine.Spec) []Problem {
	var out []Problem
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		id, ok := call.Fn.(*syntax.Ident)
		if !ok {
			return true
		}
		s := specs[id.Name]
		if s == nil {
			return true
		}
		positional := 0
		for _, a := range call.Args {
			switch a := a.(type) {
			case *syntax.BinaryExpr:
				if a.Op != syntax.EQ {
					positional++
					continue
				}
				kwID := a.X.(*syntax.Ident)
				kw := kwID.Name
				if !hasParam(s, kw) {
					out = append(out, Problem{kwID.NamePos, fmt.Sprintf("%s has no argument %q (arguments: %s)", s.Name, kw, paramNames(s))})
				}
			case *syntax.UnaryExpr: // *args, **kwargs
			default:
				positional++
			}
		}
		if positional > len(s.Params) {
			out = append(out, Problem{call.Lparen, fmt.Sprintf("%s takes at most %d positional arguments, got %d", s.Name, len(s.Params), positional)})
		}
		return true
	})
	return out
}

// checkParams reports params without docs and params never read as p.NAME.
func checkParams(f *syntax.File, rb *engine.Runbook) []Problem {
	read := map[string]bool{}
	var declPos syntax.Position
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DotExpr:
			read[n.Name.Name] = true
		case *syntax.CallExpr:
			if id, ok := n.Fn.(*syntax.Ident); ok && id.Name == "runbook" {
				declPos = n.Lparen
			}
		}
		return true
	})
	var out []Problem
	for _, p := range rb.Params {
		if p.Doc == "" {
			out = append(out, Problem{declPos, fmt.Sprintf("param %q has no doc", p.Name)})
		}
		if !read[p.Name] {
			out = append(out, Problem{declPos, fmt.Sprintf("param %q is never read (no p.%s in the runbook)", p.Name, p.Name)})
		}
	}
	return out
}

func hasParam(s *engine.Spec, name string) bool {
	for _, p := range s.Params {
		if p.Name == name {
			return true
		}
	}
	return false
}

func paramNames(s *engine.Spec) string {
	out := ""
	for i, p := range s.Params {
		if i > 0 {
			out += ", "
		}
		out += p.Name
	}
	return out
}
