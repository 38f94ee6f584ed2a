package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/spf13/cobra"
)

func newDescribeCmd(g *globalFlags) *cobra.Command {
	var output *outputFlag
	cmd := &cobra.Command{
		Use:   "describe RUNBOOK",
		Short: "Show a runbook's documentation, params and the built-ins it may call",
		Args:  exactArgs(1, "one runbook (a .star path or a runbook name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			module, err := resolveRunbook(g, args[0])
			if err != nil {
				return err
			}
			rb, err := engine.Describe(module, engine.Options{Specs: builtins.All(builtins.Config{}), Loader: g.loader()})
			if err != nil {
				return err
			}
			if output.value != "text" {
				return writeData(cmd.OutOrStdout(), output.value, rb)
			}
			writeDescription(cmd.OutOrStdout(), rb)
			return nil
		},
	}
	output = addOutputFlag(cmd, dataOutputs)
	return cmd
}

func writeDescription(w io.Writer, rb *engine.Runbook) {
	fmt.Fprintf(w, "%s — %s\n(%s)\n", rb.Name, rb.Summary, rb.Path)
	if rb.Doc != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(rb.Doc))
	}
	fmt.Fprintf(w, "\nParams:\n")
	if len(rb.Params) == 0 {
		fmt.Fprintf(w, "  (none)\n")
	}
	for _, p := range rb.Params {
		req := ""
		if p.Required {
			req = ", required"
		} else if p.Default != nil {
			req = fmt.Sprintf(", default %v", p.Default)
		}
		if p.Name == namespaceParam && p.Type == "string" {
			req += " (-n, else the kubeconfig context's namespace, takes its place)"
		}
		fmt.Fprintf(w, "  %-14s %s%s\n  %-14s %s\n", p.Name, p.Type, req, "", p.Doc)
	}
	fmt.Fprintf(w, "\nBuilt-ins it may call:\n")
	for _, eff := range []engine.Effect{engine.Read, engine.Write} {
		names := rb.Builtins[eff]
		if len(names) == 0 {
			names = []string{"(none)"}
		}
		fmt.Fprintf(w, "  %-6s %s\n", eff, strings.Join(names, ", "))
	}
}
