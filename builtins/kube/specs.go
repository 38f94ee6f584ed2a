package kube

import "github.com/kdiag/kdiag/engine"

// Specs returns the Kubernetes built-ins, all reaching the cluster through
// c: get, list, get_pod, events, logs, pod_diagnosis, attach_ephemeral,
// exec, patch_configmap, restart and wait_ready. Building them does not
// touch c; the first call that needs the cluster does.
func Specs(c Clients) []*engine.Spec {
	k := &kube{clients: c}
	specs := []*engine.Spec{
		k.getSpec(),
		k.listSpec(),
		k.getPodSpec(),
		k.eventsSpec(),
		k.logsSpec(),
		k.podDiagnosisSpec(),
		k.attachEphemeralSpec(),
		k.execSpec(),
		k.patchConfigMapSpec(),
		k.restartSpec(),
		k.waitReadySpec(),
	}
	for _, s := range specs {
		k.guard(s)
	}
	return specs
}
