package main

import (
	"fmt"
	"runtime"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kdiag's version and transcript format",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "kdiag %s (transcript format %d, %s %s/%s)\n", version, transcript.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
