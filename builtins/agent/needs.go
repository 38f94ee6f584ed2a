package agent

import (
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/builtins/node"
)

// Builtins are the built-ins a Router serves: the names of the node
// operations (find_pid, the node built-ins' table, strace_sample).
var Builtins = names()

func names() []string {
	var out []string
	for _, op := range ops() {
		out = append(out, op.Name())
	}
	return out
}

// Needs returns the permissions the built-in named builtin needs in mode,
// for the preflight (kube.Preflight): in agent mode, creating, listing,
// heart-beating (patch), exec-ing into and deleting agent pods in
// agentNamespace ("" means namespace), and for an operation about a pod
// rather than a process (find_pid), getting that pod in namespace to
// learn its node.
// Local mode needs none; auto mode needs none up front either, as on the
// pod's node it runs locally (a refusal off the node is reported by the
// call, with the rule to add).
func Needs(mode Mode, builtin, namespace, agentNamespace string) []kube.Need {
	op := served(builtin)
	if mode != ModeAgent || op == nil {
		return nil
	}
	if agentNamespace == "" {
		agentNamespace = namespace
	}
	pod := func(verb, sub, ns string) kube.Need {
		return kube.Need{Verb: verb, Resource: "pods", Subresource: sub, Namespace: ns}
	}
	needs := []kube.Need{
		pod("create", "", agentNamespace), pod("get", "", agentNamespace), pod("list", "", agentNamespace),
		pod("patch", "", agentNamespace), pod("delete", "", agentNamespace), pod("create", "exec", agentNamespace),
	}
	if _, aboutPods := op.Pod(nil); aboutPods {
		needs = append(needs, pod("get", "", namespace))
	}
	return needs
}

// served returns the operation named builtin, nil if the agent serves
// none of that name.
func served(builtin string) node.Op {
	for _, op := range ops() {
		if op.Name() == builtin {
			return op
		}
	}
	return nil
}
