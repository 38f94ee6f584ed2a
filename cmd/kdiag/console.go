package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"golang.org/x/term"
)

// console prints a run's progress: a line per step, call, finding and log
// line; on a terminal, a spinner while a call is running.
type console struct {
	w       io.Writer
	tty     bool
	mu      sync.Mutex
	stop    chan struct{}
	stopped chan struct{}
}

func newConsole(w io.Writer) *console {
	c := &console{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		c.tty = true
	}
	return c
}

// progress starts the spinner for a call that is about to run.
func (c *console) progress(builtin, pos string) {
	if !c.tty {
		return
	}
	c.stopSpinner()
	c.stop, c.stopped = make(chan struct{}), make(chan struct{})
	go func(stop, stopped chan struct{}) {
		defer close(stopped)
		frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
		start := time.Now()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			c.mu.Lock()
			fmt.Fprintf(c.w, "\r\033[K  %c %s %s", frames[i%len(frames)], builtin, time.Since(start).Round(100*time.Millisecond))
			c.mu.Unlock()
			select {
			case <-stop:
				c.mu.Lock()
				fmt.Fprint(c.w, "\r\033[K")
				c.mu.Unlock()
				return
			case <-t.C:
			}
		}
	}(c.stop, c.stopped)
}

func (c *console) stopSpinner() {
	if c.stop != nil {
		close(c.stop)
		<-c.stopped
		c.stop = nil
	}
}

// event prints one recorded event.
func (c *console) event(e *transcript.Event) {
	c.stopSpinner()
	c.mu.Lock()
	defer c.mu.Unlock()
	indent := strings.Repeat("  ", strings.Count(e.Step, " / "))
	switch e.Type {
	case transcript.TypeHeader:
		fmt.Fprintf(c.w, "kdiag: running %s (%s), mode %s\n", report.Printable(e.Name), report.Printable(e.Runbook), report.Printable(e.Mode))
	case transcript.TypeStepStart:
		fmt.Fprintf(c.w, "%s▶ %s\n", indent, report.Printable(lastStep(e.Step)))
	case transcript.TypeStepEnd:
		if e.Status != transcript.StatusOK {
			fmt.Fprintf(c.w, "%s✗ %s: %s\n", indent, report.Printable(lastStep(e.Step)), report.Printable(e.Message))
		}
	case transcript.TypeCall:
		out := report.Short(e.Result, 70)
		if e.Error != nil {
			out = "✗ " + e.Error.Message
		}
		fmt.Fprintf(c.w, "%s  %s → %s (%s)\n", indent, report.Printable(e.Builtin), report.Printable(out), time.Duration(e.DurationMS*float64(time.Millisecond)).Round(time.Millisecond))
	case transcript.TypeFinding:
		fmt.Fprintf(c.w, "%s  ! %s: %s\n", indent, report.Printable(strings.ToUpper(e.Severity)), report.Printable(e.Summary))
	case transcript.TypePrint:
		fmt.Fprintf(c.w, "%s  %s\n", indent, report.Printable(e.Message))
	case transcript.TypeFooter:
		fmt.Fprintf(c.w, "kdiag: %s after %s, %d calls\n", report.Printable(e.Status), time.Duration(e.DurationMS*float64(time.Millisecond)).Round(time.Millisecond), e.Calls)
	}
}

func (c *console) done() { c.stopSpinner() }

func lastStep(s string) string {
	if i := strings.LastIndex(s, " / "); i >= 0 {
		return s[i+3:]
	}
	return s
}
