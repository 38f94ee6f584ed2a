package main

import (
	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
)

// namespaceParam is the runbook param that the global -n fills.
const namespaceParam = "namespace"

// defaultNamespace gives a runbook's string param "namespace", when no -p
// sets it, the namespace kubectl would use: -n, else the kubeconfig
// context's namespace, else the runbook's own default. A context that
// names no namespace leaves the runbook's default alone.
func defaultNamespace(rb *engine.Runbook, raw map[string]any, cfg builtins.Config) {
	d, ok := rb.Param(namespaceParam)
	if _, given := raw[namespaceParam]; !ok || given || d.Type != "string" {
		return
	}
	if cfg.Namespace != "" {
		raw[namespaceParam] = cfg.Namespace
		return
	}
	if ns := kube.ContextNamespace(cfg.Kubeconfig, cfg.Context); ns != "" {
		raw[namespaceParam] = ns
	}
}
