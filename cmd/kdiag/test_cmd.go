package main

import (
	"fmt"
	"strings"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine/suite"
	"github.com/spf13/cobra"
)

func newTestCmd(g *globalFlags) *cobra.Command {
	var update, verbose bool
	var junit string
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Test runbooks: replay each testdata/ recording against the current runbook, run *_test.star",
		Long: `For every runbook DIR/NAME.star, test replays each recording DIR/testdata/NAME/*.jsonl
against the current runbook (no cluster) and compares its status, verdict, findings
and changes with DIR/testdata/NAME/*.expect.json (--update rewrites them). It also runs
the test_* functions of every *_test.star file, which may use the assert module.
The last line is "N passed, M failed"; the exit code is 1 if any failed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			opts := suite.Options{Specs: builtins.All(builtins.Config{}), Loader: g.loader(), Update: update}
			passed, failed := 0, 0
			out := cmd.OutOrStdout()
			report := &junitSuites{}
			for _, dir := range args {
				outcomes, err := suite.Run(cmd.Context(), dir, opts)
				if err != nil {
					return usageErrorf("%v", err)
				}
				report.add(dir, outcomes)
				for _, o := range outcomes {
					if o.Err != nil {
						failed++
						fmt.Fprintf(out, "FAIL %s\n     %s\n", o.Name, strings.ReplaceAll(o.Err.Error(), "\n", "\n     "))
						continue
					}
					passed++
					if verbose {
						fmt.Fprintf(out, "ok   %s\n", o.Name)
					}
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			if junit != "" {
				if err := report.write(junit); err != nil {
					return fmt.Errorf("test: --junit %s: %v", junit, err)
				}
			}
			if failed > 0 {
				return &silentError{fmt.Errorf("%d runbook tests failed", failed)}
			}
			if passed == 0 {
				return usageErrorf("test: no recordings or *_test.star files found in %s", strings.Join(args, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&update, "update", false, "rewrite the expectations from the current runbooks")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the results as JUnit XML to this file (for CI)")
	return cmd
}
