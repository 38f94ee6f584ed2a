package main

import (
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

func newReportCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "report TRANSCRIPT",
		Short: "Render a transcript as a report (text, markdown or json)",
		Args:  exactArgs(1, "one transcript"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := readTranscript(args[0])
			if err != nil && !errors.Is(err, transcript.ErrTruncated) {
				return err
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "kdiag: warning: %v; showing what it holds\n", err)
			}
			if rerr := report.Render(cmd.OutOrStdout(), t, output); rerr != nil {
				return usageErrorf("%v", rerr)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, markdown or json")
	return cmd
}
