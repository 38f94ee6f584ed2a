package agent

import (
	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/kube"
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
// agentNamespace ("" means namespace), and for find_pid, which names a pod
// rather than a process, getting that pod in namespace to learn its node.
// Local mode needs none; auto mode needs none up front either, as on the
// pod's node it runs locally (a refusal off the node is reported by the
// call, with the rule to add).
func Needs(mode Mode, builtin, namespace, agentNamespace string) []kube.Need {
	if mode != ModeAgent || !served(builtin) {
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
	if builtin == cri.FindPID.Name() {
		needs = append(needs, pod("get", "", namespace))
	}
	return needs
}

func served(builtin string) bool {
	for _, b := range Builtins {
		if b == builtin {
			return true
		}
	}
	return false
}
