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
