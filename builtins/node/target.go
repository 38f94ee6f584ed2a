package node

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// NSHandle is the record enter_ns returns and other built-ins accept as
// ns=. Inodes identify the namespaces as they were when the handle was
// made, so that a later use notices a process that exited and a PID that
// was reused.
type NSHandle struct {
	// PID is the process in the node's PID namespace.
	PID int `json:"pid"`
	// Namespaces are the namespaces to join, e.g. ["net", "mnt"].
	Namespaces []string `json:"namespaces"`
	// Inodes maps each namespace to its identity, e.g. "net:[4026532281]".
	Inodes map[string]string `json:"inodes"`
}

// Has reports whether the handle includes namespace ns.
func (h *NSHandle) Has(ns string) bool { return slices.Contains(h.Namespaces, ns) }

// Target is the process a request is about: a PID, and the handle it came
// from when the runbook passed ns=.
type Target struct {
	// PID is the process in the node's PID namespace.
	PID int `json:"pid"`
	// Handle, if set, restricts and checks the namespaces used.
	Handle *NSHandle `json:"handle,omitempty"`
}

// DefaultNamespaces are the namespaces enter_ns joins unless told
// otherwise: those nsenter -n -p -u -i -m joins.
var DefaultNamespaces = []string{"net", "pid", "uts", "ipc", "mnt"}

// knownNamespaces are the namespaces a handle may name. The user namespace
// is not among them: a multithreaded process cannot join one.
var knownNamespaces = []string{"net", "pid", "uts", "ipc", "mnt", "cgroup"}

// namespaces returns the namespaces a request joins: the handle's, or all
// default ones for a bare PID.
func (t *Target) namespaces() []string {
	if t.Handle != nil {
		return t.Handle.Namespaces
	}
	return DefaultNamespaces
}

// checkNamespaces validates and de-duplicates namespace names.
func checkNamespaces(builtin string, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		switch {
		case n == "user":
			return nil, engine.Errorf(engine.KindInvalid, "%s: joining the user namespace is not supported (a multithreaded process cannot join one); as root on the node the other namespaces need no user namespace", builtin)
		case !slices.Contains(knownNamespaces, n):
			return nil, engine.Errorf(engine.KindInvalid, "%s: unknown namespace %q (namespaces: %s)", builtin, n, strings.Join(knownNamespaces, ", "))
		case !slices.Contains(out, n):
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, engine.Errorf(engine.KindInvalid, "%s: no namespaces given (namespaces: %s)", builtin, strings.Join(knownNamespaces, ", "))
	}
	return out, nil
}

// targetParams are the parameters of built-ins that take a target.
func targetParams() []engine.Param {
	return []engine.Param{
		{Name: "pid", Type: "int", Doc: "the process, in the node's PID namespace (or give ns=)"},
		{Name: "ns", Type: "dict", Doc: "a handle from enter_ns (or give pid=)"},
	}
}

// targetArg reads pid= and ns= into a Target. With required false and
// neither given it returns nil (the node itself).
func targetArg(builtin string, a engine.Args, required bool) (*Target, error) {
	t := &Target{PID: int(a.Int("pid"))}
	if a.Has("ns") {
		h, err := handleArg(builtin, a.Map("ns"))
		if err != nil {
			return nil, err
		}
		if a.Has("pid") && t.PID != h.PID {
			return nil, engine.Errorf(engine.KindInvalid, "%s: pid=%d and ns= (a handle on process %d) disagree; give one of them", builtin, t.PID, h.PID)
		}
		t.PID, t.Handle = h.PID, h
	}
	if !a.Has("pid") && !a.Has("ns") {
		if required {
			return nil, engine.Errorf(engine.KindInvalid, "%s: give pid= (a process on the node) or ns= (a handle from enter_ns)", builtin)
		}
		return nil, nil
	}
	if t.PID <= 0 {
		return nil, engine.Errorf(engine.KindInvalid, "%s: pid must be a positive process id, got %d", builtin, t.PID)
	}
	return t, nil
}

// handleArg decodes an enter_ns record passed back as a dict.
func handleArg(builtin string, m map[string]any) (*NSHandle, error) {
	h := &NSHandle{}
	if err := (engine.Args(m)).Decode(h); err != nil || h.PID <= 0 || len(h.Namespaces) == 0 {
		return nil, engine.Errorf(engine.KindInvalid, "%s: ns= must be the record enter_ns returned, with pid, namespaces and inodes (got %s)", builtin, describeDict(m))
	}
	ns, err := checkNamespaces(builtin, h.Namespaces)
	if err != nil {
		return nil, err
	}
	h.Namespaces = ns
	for _, n := range ns {
		if h.Inodes[n] == "" {
			return nil, engine.Errorf(engine.KindInvalid, "%s: ns= handle on process %d has no inode for namespace %q; make it with enter_ns", builtin, h.PID, n)
		}
	}
	return h, nil
}

func describeDict(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return fmt.Sprintf("a dict with keys %s", strings.Join(keys, ", "))
}
