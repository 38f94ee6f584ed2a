package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/lint"
	"github.com/spf13/cobra"
)

func newLintCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
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
			opts := engine.Options{Specs: builtins.All(builtins.Config{}), Loader: g.loader()}
			problems := 0
			for _, f := range files {
				ps, err := lint.Runbook(f, opts)
				if err != nil {
					problems++
					fmt.Fprintln(cmd.OutOrStdout(), strings.SplitN(err.Error(), "\n", 2)[0])
					continue
				}
				for _, p := range ps {
					problems++
					fmt.Fprintln(cmd.OutOrStdout(), p)
				}
			}
			if problems > 0 {
				return &silentError{fmt.Errorf("%d problems in %d runbooks", problems, len(files))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d runbooks, no problems\n", len(files))
			return nil
		},
	}
}
