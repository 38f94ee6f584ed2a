package main

import (
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/spf13/cobra"
)

func newUndoCmd(g *globalFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "undo TRANSCRIPT",
		Short: "Revert the changes a recorded run applied, newest first, refusing if an object changed since",
		Args:  exactArgs(1, "one transcript"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if why := playbook.DamagedTranscript(args[0]); why != "" {
				return fmt.Errorf("undo: %s: the run is marked damaged (%s); its transcript cannot be trusted to say what to revert, so nothing was changed", args[0], why)
			}
			t, err := readTranscript(args[0])
			if err != nil && !errors.Is(err, transcript.ErrTruncated) {
				return err
			}
			specs := builtins.All(g.config())
			results, err := engine.Undo(cmd.Context(), t, specs, newApprover(yes, cmd.ErrOrStderr()))
			for _, r := range results {
				state := "reverted"
				if r.Irreversible {
					state = "left as is (no inverse): " + r.Note
				}
				if r.Error != "" {
					state = "NOT reverted: " + r.Error
				}
				fmt.Fprintf(cmd.OutOrStdout(), "#%d %s %s: %s\n", r.Seq, r.Builtin, r.Target, state)
			}
			if err == nil && len(results) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to undo: the run applied no changes")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "revert without asking")
	return cmd
}
