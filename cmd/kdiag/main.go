// Command kdiag runs scripted diagnosis runbooks against Kubernetes pods
// and nodes, records every step, and replays recordings without a cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kdiag/kdiag/engine"
	"k8s.io/klog/v2"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitDiverged  = 3
	exitCancelled = 130
)

func main() {
	// client-go logs through klog (e.g. "Copying stderr failed" when a pod
	// goes away mid-exec); kdiag reports errors itself.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := newRootCmd(ctx)
	err := cmd.ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps an error to kdiag's exit codes, printing it.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var silent *silentError
	if !errors.As(err, &silent) {
		fmt.Fprintln(os.Stderr, "kdiag:", indentLines(err.Error()))
	}
	var usage *engine.UsageError
	var div *engine.DivergenceError
	var cancelled *engine.CancelledError
	var flagErr *flagError
	switch {
	case errors.As(err, &div):
		return exitDiverged
	case errors.As(err, &cancelled):
		return exitCancelled
	case errors.As(err, &usage), errors.As(err, &flagErr):
		return exitUsage
	}
	return exitFailed
}

// silentError carries an exit status for an error already reported.
type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

// flagError is a command-line usage error.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &flagError{fmt.Errorf(format, args...)}
}

// indentLines indents every line after the first that is not indented
// already, so that text in an error (which a runbook or workload may
// control) cannot start a line of its own, such as a transcript frame in a
// Job's log.
func indentLines(s string) string {
	lines := strings.Split(s, "\n")
	for i := 1; i < len(lines); i++ {
		if l := lines[i]; l != "" && l[0] != ' ' && l[0] != '\t' {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
