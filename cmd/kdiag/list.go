package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/spf13/cobra"
)

func newListCmd(g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the runbooks of the built-in library and the --repo repositories",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			specs := builtins.All(builtins.Config{})
			type row struct {
				Name    string `json:"name"`
				Summary string `json:"summary"`
				Repo    string `json:"repo"`
				Module  string `json:"module"`
				Error   string `json:"error,omitempty"`
			}
			var rows []row
			for _, ref := range g.loader().Runbooks() {
				r := row{Name: ref.Name, Repo: ref.Repo, Module: ref.Module}
				rb, err := engine.Describe(ref.Module, engine.Options{Specs: specs, Loader: g.loader()})
				if err != nil {
					r.Error = strings.SplitN(err.Error(), "\n", 2)[0]
				} else {
					r.Summary = rb.Summary
				}
				rows = append(rows, r)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREPO\tSUMMARY")
			for _, r := range rows {
				s := r.Summary
				if r.Error != "" {
					s = "INVALID: " + r.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Repo, s)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
