package playbook

import (
	"fmt"
	"os"
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
	return l.Find(ref)
}
