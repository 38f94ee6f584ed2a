package kube

import (
	"testing"
)

func TestDeniedMessage(t *testing.T) {
	got := deniedMessage("system:serviceaccount:default:limited", []Need{
		{Verb: "update", Resource: "pods", Subresource: "ephemeralcontainers", Namespace: "default"},
		{Verb: "watch", Resource: "pods", Namespace: "default"},
		{Verb: "get", Resource: "pods", Namespace: "default"},
	})
	want := `rbac: the current user "system:serviceaccount:default:limited" cannot "update" "pods/ephemeralcontainers" in namespace "default", ` +
		`nor "watch" "pods" in namespace "default", nor "get" "pods" in namespace "default"; add to a Role: ` +
		`- apiGroups: [""] resources: ["pods/ephemeralcontainers"] verbs: ["update"] ` +
		`- apiGroups: [""] resources: ["pods"] verbs: ["get", "watch"]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	cluster := deniedMessage("bob", []Need{{Verb: "list", Resource: "nodes", ClusterScoped: true}})
	if want := `rbac: the current user "bob" cannot "list" "nodes" cluster-wide; add to a ClusterRole: - apiGroups: [""] resources: ["nodes"] verbs: ["list"]`; cluster != want {
		t.Errorf("got  %s\nwant %s", cluster, want)
	}
}

func TestNeedsCoverEverySpec(t *testing.T) {
	for _, s := range Specs(StaticClients(nil, nil, "")) {
		n := Needs(s.Name, "ns")
		if s.Name == "get" || s.Name == "list" {
			if n != nil {
				t.Errorf("Needs(%q) = %v, want nil (kind-dependent)", s.Name, n)
			}
			continue
		}
		if len(n) == 0 {
			t.Errorf("Needs(%q) is empty", s.Name)
		}
		for _, x := range n {
			if x.Namespace != "ns" || x.Verb == "" || x.Resource == "" {
				t.Errorf("Needs(%q): incomplete need %+v", s.Name, x)
			}
		}
	}
	if Needs("no_such_builtin", "ns") != nil {
		t.Error("Needs of an unknown built-in is not nil")
	}
}

// TestEveryBuiltinDeclaresItsPermissions fails when a built-in of the
// table declares no API permissions (nor that only the call knows them),
// and checks that the check catches one registered without them.
func TestEveryBuiltinDeclaresItsPermissions(t *testing.T) {
	if err := checkTable(table); err != nil {
		t.Error(err)
	}
	seen := map[string]bool{}
	for _, s := range Specs(StaticClients(nil, nil, "")) {
		if seen[s.Name] {
			t.Errorf("built-in %s is in the table twice", s.Name)
		}
		seen[s.Name] = true
	}
	bare := append(append([]builtin{}, table...), builtin{spec: (*kube).getPodSpec})
	err := checkTable(bare)
	if err == nil || err.Error() != "kube built-in get_pod declares no API permissions: give its builtin a needs function (or perCall)" {
		t.Errorf("a built-in without permissions: %v", err)
	}
	empty := []builtin{{spec: (*kube).logsSpec, needs: func(string) []Need { return nil }}}
	if err := checkTable(empty); err == nil {
		t.Error("a built-in whose needs are empty passed the check")
	}
}
