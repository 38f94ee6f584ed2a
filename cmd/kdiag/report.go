package main

import (
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

func newReportCmd(g *globalFlags) *cobra.Command {
	var output *outputFlag
	cmd := &cobra.Command{
		Use:   "report TRANSCRIPT",
		Short: "Render a transcript as a report (text, markdown, json, yaml or html)",
		Args:  exactArgs(1, "one transcript"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := readTranscript(args[0])
			if err != nil && !errors.Is(err, transcript.ErrTruncated) {
				return err
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "kdiag: warning: %v; showing what it holds\n", err)
			}
			return report.RenderWith(cmd.OutOrStdout(), t, output.value, report.Options{Color: g.color.enabled(cmd.OutOrStdout())})
		},
	}
	output = addOutputFlag(cmd, reportOutputs)
	return cmd
}
