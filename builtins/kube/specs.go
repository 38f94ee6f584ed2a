package kube

import (
	"fmt"

	"github.com/kdiag/kdiag/engine"
)

// builtin is a Kubernetes built-in: its Spec and, declared next to it, the
// API permissions it needs, from which the RBAC preflight (Needs,
// Preflight) is derived.
type builtin struct {
	// spec declares the built-in, reaching the cluster through k.
	spec func(k *kube) *engine.Spec
	// needs returns the permissions a call in namespace ns needs.
	needs func(ns string) []Need
	// perCall marks a built-in whose permissions depend on the call's
	// arguments (get and list: the kind), so that only the call knows
	// them; a 403 then names the Role rule to add. needs is nil.
	perCall bool
}

// table lists the Kubernetes built-ins in the order of their
// documentation. A new one is a builtin declared next to its Spec, in a
// file of its own, and one line here (see CONTRIBUTING.md).
var table = []builtin{
	getBuiltin,
	listBuiltin,
	getPodBuiltin,
	eventsBuiltin,
	logsBuiltin,
	podDiagnosisBuiltin,
	attachEphemeralBuiltin,
	execBuiltin,
	patchConfigMapBuiltin,
	restartBuiltin,
	waitReadyBuiltin,
}

// Specs returns the Kubernetes built-ins, all reaching the cluster through
// c: get, list, get_pod, events, logs, pod_diagnosis, attach_ephemeral,
// exec, patch_configmap, restart and wait_ready. Building them does not
// touch c; the first call that needs the cluster does.
func Specs(c Clients) []*engine.Spec {
	k := &kube{clients: c}
	specs := make([]*engine.Spec, len(table))
	for i, b := range table {
		specs[i] = b.spec(k)
		k.guard(specs[i])
	}
	return specs
}

// Needs returns the permissions the built-in named builtin uses in
// namespace, as declared next to its Spec. get and list need "get"/"list"
// on the kind they are called with, which only the call knows: Needs
// returns nil for them (a 403 at call time is still translated into the
// missing Role rule). Unknown names return nil.
func Needs(builtin, namespace string) []Need {
	k := &kube{}
	for _, b := range table {
		if b.needs != nil && b.spec(k).Name == builtin {
			return b.needs(namespace)
		}
	}
	return nil
}

// checkTable verifies that every built-in of rows declares its
// permissions: a needs function giving at least one complete Need, or
// perCall, not both.
func checkTable(rows []builtin) error {
	k := &kube{}
	for _, b := range rows {
		name := b.spec(k).Name
		switch {
		case b.perCall && b.needs != nil:
			return fmt.Errorf("kube built-in %s declares both needs and perCall", name)
		case b.perCall:
			continue
		case b.needs == nil:
			return fmt.Errorf("kube built-in %s declares no API permissions: give its builtin a needs function (or perCall)", name)
		}
		ns := b.needs("ns")
		if len(ns) == 0 {
			return fmt.Errorf("kube built-in %s: needs returns no permission", name)
		}
		for _, n := range ns {
			if n.Verb == "" || n.Resource == "" || n.Namespace != "ns" && !n.ClusterScoped {
				return fmt.Errorf("kube built-in %s: incomplete need %+v", name, n)
			}
		}
	}
	return nil
}
