package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

func newReportCmd(g *globalFlags) *cobra.Command {
	var output *outputFlag
	cmd := &cobra.Command{
		Use:   "report TRANSCRIPT | FLEET-DIR",
		Short: "Render a transcript as a report (text, markdown, json, yaml or html), or a fleet run's directory as its summary",
		Args:  exactArgs(1, "one transcript, or the directory of a fleet run"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
				if output.value == "html" {
					return usageErrorf("-o html renders one run: give one of %s's transcripts", args[0])
				}
				sum, err := fleetOf(args)
				if err != nil {
					return err
				}
				return writeFleet(cmd.OutOrStdout(), sum, output.value)
			}
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
