package main

import (
	"fmt"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/spf13/cobra"
)

// newAgentCmd returns the hidden `kdiag agent` commands that kdiag runs
// inside its node agent pods (package builtins/agent); they are not meant
// to be run by hand.
func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "The node agent that kdiag runs in a pod on a remote node (internal)",
		Hidden: true,
		Args:   exactArgs(0, "a subcommand (idle or session)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("%s: give a subcommand: idle or session", cmd.CommandPath())
		},
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "idle",
			Short: "Wait until SIGTERM: the agent pod's main process",
			Args:  exactArgs(0, "no arguments"),
			RunE:  func(cmd *cobra.Command, _ []string) error { return agent.Idle(cmd.Context()) },
		},
		&cobra.Command{
			Use:   "session",
			Short: "Serve JSON request frames from stdin on this node until stdin ends, answering on stdout",
			Args:  exactArgs(0, "no arguments (the requests come on stdin)"),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return agent.Session(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
			},
		},
	)
	return cmd
}

// nodeModeFlag is --node-mode: local, agent or auto (the default),
// checked when parsed.
type nodeModeFlag struct{ m agent.Mode }

func (f *nodeModeFlag) String() string { return string(f.mode()) }
func (f *nodeModeFlag) Type() string   { return "mode" }

// Set parses the flag's value.
func (f *nodeModeFlag) Set(s string) error {
	m, err := agent.ParseMode(s)
	if err != nil {
		return fmt.Errorf("want local, agent or auto")
	}
	f.m = m
	return nil
}

// mode returns the chosen mode, auto by default.
func (f *nodeModeFlag) mode() agent.Mode {
	if f.m == "" {
		return agent.ModeAuto
	}
	return f.m
}
