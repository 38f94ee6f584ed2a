package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/spf13/cobra"
)

// version is kdiag's version: set with -ldflags "-X main.version=...";
// when it is not, the module version `go install ...@vX.Y.Z` (or go
// build's VCS stamping) recorded in the binary; else devVersion.
var version string

// devVersion is the version of a build that carries no version at all
// (a test binary, go build outside a repository).
const devVersion = "v0.1.0-dev"

func init() {
	version = resolveVersion(version, debug.ReadBuildInfo)
}

// resolveVersion returns the ldflags version if set, else the main
// module's version from the build info, else devVersion.
func resolveVersion(ldflags string, read func() (*debug.BuildInfo, bool)) string {
	if ldflags != "" {
		return ldflags
	}
	if bi, ok := read(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return devVersion
}

func newVersionCmd() *cobra.Command {
	var output *outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kdiag's version and transcript format",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output.value != "text" {
				return writeData(cmd.OutOrStdout(), output.value, map[string]any{
					"version": version, "transcriptFormat": transcript.Version, "goVersion": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
					"image": agent.Image(version)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kdiag %s (transcript format %d, %s %s/%s)\nimage %s (the default agent and Job image)\n", version, transcript.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, agent.Image(version))
			return nil
		},
	}
	output = addOutputFlag(cmd, dataOutputs)
	return cmd
}
