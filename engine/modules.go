package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine/transcript"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// modules executes a runbook's files on one thread, each file once: the
// module cache of one Load, and the record of the files it read and how
// each load statement resolved. A run does not hold it: a Program keeps
// what it recorded.
type modules struct {
	loader  *Loader
	thread  *starlark.Thread
	predecl starlark.StringDict
	files   []transcript.File
	loads   map[string]string
	cache   map[string]*module
	stack   []string
	decl    *Runbook
}

// module is one executed file: its globals, or the error that stopped it.
type module struct {
	globals starlark.StringDict
	err     error
}

// newModules returns an empty cache that executes files on thread with
// predecl predeclared; it serves thread's load statements.
func newModules(loader *Loader, thread *starlark.Thread, predecl starlark.StringDict) *modules {
	m := &modules{loader: loader, thread: thread, predecl: predecl, loads: map[string]string{}, cache: map[string]*module{}}
	thread.Load = m.load
	return m
}

// main executes the runbook's top level and returns its declaration and
// main function.
func (m *modules) main(runbookPath string) (*Runbook, starlark.Callable, error) {
	name, err := m.loader.Resolve("", runbookPath)
	if err != nil {
		return nil, nil, &UsageError{err}
	}
	globals, err := m.exec(name)
	if err != nil {
		return nil, nil, &UsageError{err}
	}
	rb := m.decl
	if rb == nil {
		rb = &Runbook{Path: name, Name: strings.TrimSuffix(path.Base(name), ".star")}
	}
	rb.Path = name
	mainFn, ok := globals["main"].(starlark.Callable)
	if !ok {
		return rb, nil, &UsageError{fmt.Errorf("%s: the runbook defines no main(p) function; put the diagnosis in def main(p): and read params as p.NAME", name)}
	}
	return rb, mainFn, nil
}

// exec reads and executes one file, or returns its cached result.
func (m *modules) exec(name string) (starlark.StringDict, error) {
	if c, ok := m.cache[name]; ok {
		if c == nil {
			return nil, fmt.Errorf("load cycle: %s -> %s", strings.Join(m.stack, " -> "), name)
		}
		return c.globals, c.err
	}
	src, err := m.loader.Read(name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(src)
	f := transcript.File{Path: name, SHA256: hex.EncodeToString(sum[:]), Source: string(src)}
	if repo, o, ok := m.loader.origin(name); ok {
		f.Repo, f.URL, f.Commit = repo, o.URL, o.Commit
	}
	m.files = append(m.files, f)
	m.cache[name] = nil
	m.stack = append(m.stack, name)
	predecl := m.predecl
	if len(m.stack) == 1 {
		predecl = copyDict(m.predecl)
		predecl["runbook"] = runbookBuiltin(&m.decl, name)
	}
	globals, err := starlark.ExecFileOptions(FileOptions, m.thread, name, src, predecl)
	m.stack = m.stack[:len(m.stack)-1]
	if err != nil {
		err = withBacktrace(err)
	}
	m.cache[name] = &module{globals, err}
	return globals, err
}

// load implements Starlark's load statement.
func (m *modules) load(_ *starlark.Thread, module string) (starlark.StringDict, error) {
	from := m.stack[len(m.stack)-1]
	name, err := m.loader.resolveFor(m.stack[0], from, module)
	if err != nil {
		return nil, err
	}
	m.loads[from+"|"+module] = name
	return m.exec(name)
}

// mentioned returns the built-ins among specs that files mention, by
// effect.
func mentioned(files []transcript.File, specs map[string]*Spec) map[Effect][]string {
	used := map[Effect]map[string]bool{}
	for _, f := range files {
		file, err := FileOptions.Parse(f.Path, f.Source, 0)
		if err != nil {
			continue
		}
		syntax.Walk(file, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok {
				if s, ok := specs[id.Name]; ok {
					if used[s.Effect] == nil {
						used[s.Effect] = map[string]bool{}
					}
					used[s.Effect][s.Name] = true
				}
			}
			return true
		})
	}
	out := map[Effect][]string{}
	for eff, names := range used {
		out[eff] = slices.Sorted(maps.Keys(names))
	}
	return out
}
