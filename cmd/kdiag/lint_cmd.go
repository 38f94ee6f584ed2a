package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/lint"
	"github.com/spf13/cobra"
)

// lintProblem is one problem of kdiag lint -o json.
type lintProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func newLintCmd(g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lint [DIR|RUNBOOK...]",
		Short: "Check runbooks without running them: unknown arguments, undocumented or unused params, unguarded writes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			var files []string
			for _, a := range args {
				if st, err := os.Stat(a); err == nil && st.IsDir() {
					matches, _ := filepath.Glob(filepath.Join(a, "*.star"))
					for _, m := range matches {
						if !strings.HasSuffix(m, "_test.star") {
							files = append(files, m)
						}
					}
					continue
				}
				m, err := resolveRunbook(g, a)
				if err != nil {
					return err
				}
				files = append(files, m)
			}
			if output != "" && output != "text" && output != "json" {
				return usageErrorf("lint: -o %s: want text or json", output)
			}
			opts := engine.Options{Specs: builtins.All(builtins.Config{}), Loader: g.loader()}
			problems := 0
			all := []lintProblem{}
			for _, f := range files {
				ps, err := lint.Runbook(f, opts)
				if err != nil {
					problems++
					msg := strings.SplitN(err.Error(), "\n", 2)[0]
					all = append(all, lintProblem{File: f, Message: msg})
					if output != "json" {
						fmt.Fprintln(cmd.OutOrStdout(), msg)
					}
					continue
				}
				for _, p := range ps {
					problems++
					all = append(all, lintProblem{File: p.Pos.Filename(), Line: int(p.Pos.Line), Column: int(p.Pos.Col), Message: p.Msg})
					if output != "json" {
						fmt.Fprintln(cmd.OutOrStdout(), p)
					}
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"runbooks": len(files), "problems": all}); err != nil {
					return err
				}
				if problems > 0 {
					return &silentError{fmt.Errorf("%d problems in %d runbooks", problems, len(files))}
				}
				return nil
			}
			if problems > 0 {
				return &silentError{fmt.Errorf("%d problems in %d runbooks", problems, len(files))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d runbooks, no problems\n", len(files))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, or json: {runbooks, problems: [{file, line, column, message}]}")
	return cmd
}
