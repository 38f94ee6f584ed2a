package deploy_test

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/playbook"
)

// grants reports whether rules allow verb on resource in group.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// TestJobExecutorRBAC checks the manifests for executor: job: runs act as
// the ServiceAccount kdiag-runner, bound to the runbook's ClusterRole,
// which also covers node agent pods (the Job's default node mode); the
// server's Role lets it create, follow and delete the Jobs.
func TestJobExecutorRBAC(t *testing.T) {
	objs := objects(t)
	crb := find[*rbacv1.ClusterRoleBinding](objs, playbook.DefaultJobServiceAccount)
	if crb == nil || crb.RoleRef.Name != "kdiag-playbooks" || crb.Subjects[0].Name != playbook.DefaultJobServiceAccount || crb.Subjects[0].Namespace != playbook.DefaultJobNamespace {
		t.Fatalf("ClusterRoleBinding %s: %+v", playbook.DefaultJobServiceAccount, crb)
	}
	role := find[*rbacv1.ClusterRole](objs, "kdiag-playbooks")
	rb, err := engine.Describe("@kdiag//readiness-probe-failing.star", engine.Options{Specs: builtins.All(builtins.Config{}), Loader: (&playbook.Config{}).Loader(nil)})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, b := range rb.Builtins[engine.Read] {
		for _, n := range agent.Needs(agent.ModeAgent, b, "shop", "") {
			checked++
			res := n.Resource
			if n.Subresource != "" {
				res += "/" + n.Subresource
			}
			if !grants(role.Rules, n.Group, res, n.Verb) {
				t.Errorf("agent mode: the ClusterRole does not grant %s %s for %s", n.Verb, res, b)
			}
		}
	}
	if checked < 6 {
		t.Fatalf("only %d agent needs checked", checked)
	}
	jobs := find[*rbacv1.Role](objs, "kdiag-jobs")
	if jobs == nil || jobs.Namespace != playbook.DefaultJobNamespace {
		t.Fatalf("Role kdiag-jobs: %+v", jobs)
	}
	for _, g := range []struct{ group, resource, verb string }{
		{"batch", "jobs", "create"}, {"batch", "jobs", "get"}, {"batch", "jobs", "delete"},
		{"", "pods", "list"}, {"", "pods/log", "get"}, {"", "events", "list"},
		{"", "secrets", "create"}, {"", "secrets", "patch"}, {"", "secrets", "delete"},
		// episode markers, and the bundles of repository runbooks: created,
		// read back to check a reused one, marked used, listed and deleted
		// by the collector (which lists the Jobs using them).
		{"", "configmaps", "create"}, {"", "configmaps", "get"}, {"", "configmaps", "patch"}, {"", "configmaps", "list"}, {"", "configmaps", "delete"},
		{"batch", "jobs", "list"},
	} {
		if !grants(jobs.Rules, g.group, g.resource, g.verb) {
			t.Errorf("Role kdiag-jobs does not grant %s %s", g.verb, g.resource)
		}
	}
	// Why an overdue run's pod did not start: its node and the kubelet's
	// lease, read-only.
	nodes := find[*rbacv1.ClusterRole](objs, "kdiag-jobs-nodes")
	leases := find[*rbacv1.Role](objs, "kdiag-jobs-leases")
	if nodes == nil || !grants(nodes.Rules, "", "nodes", "get") || leases == nil || leases.Namespace != "kube-node-lease" || !grants(leases.Rules, "coordination.k8s.io", "leases", "get") {
		t.Errorf("kdiag-jobs-nodes %+v, kdiag-jobs-leases %+v: want nodes get, and leases get in kube-node-lease", nodes, leases)
	}
	if crb, rb := find[*rbacv1.ClusterRoleBinding](objs, "kdiag-jobs-nodes"), find[*rbacv1.RoleBinding](objs, "kdiag-jobs-leases"); crb == nil || rb == nil || crb.Subjects[0].Name != "kdiag" || rb.Subjects[0].Name != "kdiag" {
		t.Error("kdiag-jobs-nodes and kdiag-jobs-leases are not bound to the kdiag ServiceAccount")
	}
}
