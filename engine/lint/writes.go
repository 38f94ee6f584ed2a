package lint

import (
	"fmt"

	"github.com/kdiag/kdiag/engine"
	"go.starlark.net/syntax"
)

// checkWrites reports write built-ins that can run before any finding.
// A write call is guarded when finding() is called earlier in the same
// function, or when every call of the enclosing function (directly or
// passed to step) comes after a finding() in its caller, recursively.
func checkWrites(f *syntax.File, specs map[string]*engine.Spec) []Problem {
	funcs := map[string]*syntax.DefStmt{}
	for _, st := range f.Stmts {
		if d, ok := st.(*syntax.DefStmt); ok {
			funcs[d.Name.Name] = d
		}
	}
	var out []Problem
	for name, d := range funcs {
		for _, w := range writeCalls(d, specs) {
			if findingBefore(d, w.Lparen) || guardedCallers(funcs, name, map[string]bool{}) {
				continue
			}
			out = append(out, Problem{w.Lparen, fmt.Sprintf("%s changes the cluster but can run before the runbook records any finding; call finding() first", w.Fn.(*syntax.Ident).Name)})
		}
	}
	return out
}

func writeCalls(d *syntax.DefStmt, specs map[string]*engine.Spec) []*syntax.CallExpr {
	var out []*syntax.CallExpr
	syntax.Walk(d, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.CallExpr); ok {
			if id, ok := c.Fn.(*syntax.Ident); ok && specs[id.Name] != nil && specs[id.Name].Effect == engine.Write {
				out = append(out, c)
			}
		}
		return true
	})
	return out
}

// findingBefore reports whether d calls finding() before pos.
func findingBefore(d *syntax.DefStmt, pos syntax.Position) bool {
	found := false
	syntax.Walk(d, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.CallExpr); ok {
			if id, ok := c.Fn.(*syntax.Ident); ok && id.Name == "finding" && before(c.Lparen, pos) {
				found = true
			}
		}
		return true
	})
	return found
}

// guardedCallers reports whether fn is called somewhere, and every call
// site (fn(...) or step(..., fn, ...)) is preceded by a finding in its
// function or is itself in a guarded function.
func guardedCallers(funcs map[string]*syntax.DefStmt, fn string, seen map[string]bool) bool {
	if seen[fn] {
		return false
	}
	seen[fn] = true
	calls := 0
	for name, d := range funcs {
		for _, site := range callSites(d, fn) {
			calls++
			if !findingBefore(d, site) && !guardedCallers(funcs, name, seen) {
				return false
			}
		}
	}
	return calls > 0
}

func callSites(d *syntax.DefStmt, fn string) []syntax.Position {
	var out []syntax.Position
	syntax.Walk(d, func(n syntax.Node) bool {
		c, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		if id, ok := c.Fn.(*syntax.Ident); ok {
			if id.Name == fn {
				out = append(out, c.Lparen)
			}
			if id.Name == "step" {
				for _, a := range c.Args {
					if ai, ok := a.(*syntax.Ident); ok && ai.Name == fn {
						out = append(out, c.Lparen)
					}
				}
			}
		}
		return true
	})
	return out
}

func before(a, b syntax.Position) bool {
	return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
}
