package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/spf13/cobra"
)

func newUndoCmd(g *globalFlags) *cobra.Command {
	var yes bool
	var keyFile string
	cmd := &cobra.Command{
		Use:   "undo TRANSCRIPT",
		Short: "Revert the changes a recorded run applied, newest first, refusing if an object changed since",
		Args:  exactArgs(1, "one transcript"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := verifySignature(args[0], keyFile); err != nil {
				return err
			}
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
	cmd.Flags().StringVar(&keyFile, "transcript-key-file", "", "verify the transcript's signature (TRANSCRIPT.sig, written by kdiag serve with transcript_key_file) with the key in this file; an unsigned transcript is then refused")
	return cmd
}

// verifySignature checks a signed transcript: one with a signature needs
// the key, and with a key an unsigned transcript is refused.
func verifySignature(path, keyFile string) error {
	_, err := os.Stat(transcript.SignaturePath(path))
	signed := err == nil
	if keyFile == "" {
		if signed {
			return fmt.Errorf("undo: %s is signed (%s); give --transcript-key-file to verify it before anything is changed", path, transcript.SignaturePath(path))
		}
		return nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return &engine.UsageError{Err: fmt.Errorf("--transcript-key-file: %v", err)}
	}
	if err := transcript.Verify(path, bytes.TrimSpace(b)); err != nil {
		return fmt.Errorf("undo: refusing, nothing was changed: %w", err)
	}
	return nil
}
