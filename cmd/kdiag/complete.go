package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// completionTimeout bounds the cluster lookups of a completion: when the
// cluster is unreachable, completion quietly offers nothing.
const completionTimeout = 3 * time.Second

// completeRunbooks completes a runbook argument: the names of the built-in
// library's and the --repo repositories' runbooks (a .star path otherwise).
func completeRunbooks(g *globalFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if strings.ContainsAny(toComplete, "./") {
			return []string{"star"}, cobra.ShellCompDirectiveFilterFileExt
		}
		_ = g.resolveRepos() // completion runs no PersistentPreRunE
		var out []cobra.Completion
		seen := map[string]bool{}
		for _, ref := range g.loader().Runbooks() {
			if !seen[ref.Name] && strings.HasPrefix(ref.Name, toComplete) {
				seen[ref.Name] = true
				out = append(out, cobra.CompletionWithDesc(ref.Name, ref.Repo))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTranscripts completes a transcript argument: *.jsonl files.
func completeTranscripts(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"jsonl"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeParams completes -p: KEY= from the runbook's params (with their
// docs), then values: pod names for pod=, namespace names for
// namespace= (from the cluster when reachable), true/false for bools.
func completeParams(g *globalFlags, params *[]string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_ = g.resolveRepos()
		module, err := resolveRunbook(g, args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		rb, err := engine.Describe(module, engine.Options{Specs: builtins.All(builtins.Config{}), Loader: g.loader()})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		key, value, hasValue := strings.Cut(toComplete, "=")
		if !hasValue {
			given := map[string]bool{}
			for _, kv := range *params {
				k, _, _ := strings.Cut(kv, "=")
				given[k] = true
			}
			var out []cobra.Completion
			for _, p := range rb.Params {
				if !given[p.Name] && strings.HasPrefix(p.Name, key) {
					out = append(out, cobra.CompletionWithDesc(p.Name+"=", paramDesc(p)))
				}
			}
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		p, ok := rb.Param(key)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var values []string
		switch {
		case p.Type == "bool":
			values = []string{"true", "false"}
		case key == "pod":
			ns := g.namespace
			for _, kv := range *params {
				if k, v, _ := strings.Cut(kv, "="); k == "namespace" && v != "" {
					ns = v
				}
			}
			values = clusterNames(cmd.Context(), g, "pods", ns)
		case key == "namespace":
			values = clusterNames(cmd.Context(), g, "namespaces", "")
		}
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, value) {
				out = append(out, key+"="+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func paramDesc(p engine.ParamDecl) string {
	d := p.Type
	if p.Required {
		d += ", required"
	} else if s, ok := p.Default.(string); ok {
		d += fmt.Sprintf(", default %q", s)
	} else if p.Default != nil {
		d += fmt.Sprintf(", default %v", p.Default)
	}
	if p.Doc != "" {
		d += ": " + p.Doc
	}
	return d
}

// completeNamespaces completes -n from the cluster.
func completeNamespaces(g *globalFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, n := range clusterNames(cmd.Context(), g, "namespaces", "") {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// clusterNames lists the names of pods (in ns, default the context's) or
// namespaces, or nothing when the cluster cannot be reached in time.
func clusterNames(ctx context.Context, g *globalFlags, what, ns string) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	clients := g.config().Clients()
	cs, _, err := clients.Kube()
	if err != nil {
		return nil
	}
	var names []string
	switch what {
	case "pods":
		if ns == "" {
			ns = clients.Namespace()
		}
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 500})
		if err != nil {
			return nil
		}
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
	case "namespaces":
		list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 500})
		if err != nil {
			return nil
		}
		for _, n := range list.Items {
			names = append(names, n.Name)
		}
	}
	return names
}

// registerCompletions wires the completions of the global flags.
func registerCompletions(root *cobra.Command, g *globalFlags) {
	root.RegisterFlagCompletionFunc("namespace", completeNamespaces(g))
	root.RegisterFlagCompletionFunc("node-mode", cobra.FixedCompletions([]string{"auto", "local", "agent"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("color", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("kubeconfig", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveDefault
	})
	for _, c := range root.Commands() {
		switch c.Name() {
		case "replay", "report", "undo":
			c.ValidArgsFunction = completeTranscripts
		case "describe":
			c.ValidArgsFunction = completeRunbooks(g)
		}
	}
}
