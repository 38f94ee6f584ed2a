package builtins

import (
	"strings"
	"testing"
)

// TestDocsStartWithTheName: every built-in's documentation is one style,
// godoc's: its first sentence starts with the built-in's name.
func TestDocsStartWithTheName(t *testing.T) {
	for _, mode := range []string{"local", "agent"} {
		for _, s := range All(Config{NodeMode: mode}) {
			if !strings.HasPrefix(s.Doc, s.Name+" ") {
				t.Errorf("%s (node mode %s): doc starts %.40q; start it with %q", s.Name, mode, s.Doc, s.Name+" ")
			}
		}
	}
}
