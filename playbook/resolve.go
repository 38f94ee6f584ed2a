package playbook

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// resolveRunbook turns a route's runbook into a loader module the way
// kdiag run does: an @REPO//file.star module as is, a path to a .star file
// (relative to the config file), or a runbook name looked up in the
// repositories (in name order, the last one holding it wins) and then the
// built-in library.
func resolveRunbook(c *Config, l *engine.Loader, ref string) (string, error) {
	if strings.HasPrefix(ref, "@") {
		return ref, nil
	}
	if strings.HasSuffix(ref, ".star") || strings.ContainsRune(ref, '/') {
		path := c.Abs(ref)
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("runbook %s: no such file", path)
		}
		return path, nil
	}
	names := sortedKeys(l.Repos)
	for i := len(names) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(l.Repos[names[i]], ref+".star")); err == nil {
			return "@" + names[i] + "//" + ref + ".star", nil
		}
	}
	if l.Builtin != nil {
		if _, err := fs.Stat(l.Builtin, ref+".star"); err == nil {
			return "@" + engine.BuiltinRepo + "//" + ref + ".star", nil
		}
	}
	return "", fmt.Errorf("runbook %s: no runbook by that name (known: %s)", ref, strings.Join(knownRunbooks(l), ", "))
}

// knownRunbooks lists the runbook names of the library and repositories.
func knownRunbooks(l *engine.Loader) []string {
	seen := map[string]bool{}
	add := func(fsys fs.FS) {
		entries, _ := fs.ReadDir(fsys, ".")
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() && strings.HasSuffix(n, ".star") && !strings.HasSuffix(n, "_test.star") {
				seen[strings.TrimSuffix(n, ".star")] = true
			}
		}
	}
	if l.Builtin != nil {
		add(l.Builtin)
	}
	for _, dir := range l.Repos {
		add(os.DirFS(dir))
	}
	names := sortedKeys(seen)
	sort.Strings(names)
	return names
}
