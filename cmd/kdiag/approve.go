package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"golang.org/x/term"
)

// approver approves mutations: all of them with --yes; on a terminal, by
// asking after showing the plan; otherwise none.
type approver struct {
	yes bool
	out io.Writer
	in  *bufio.Reader
	tty bool
}

func newApprover(yes bool, out io.Writer) engine.Approver {
	return &approver{yes: yes, out: out, in: bufio.NewReader(os.Stdin), tty: term.IsTerminal(int(os.Stdin.Fd()))}
}

// Approve implements engine.Approver.
func (a *approver) Approve(ctx context.Context, req engine.Approval) error {
	if a.yes {
		return nil
	}
	if !a.tty {
		return errors.New("not running on a terminal and --yes was not given; re-run with --yes to allow mutations, or --dry-run to plan them")
	}
	plan, _ := json.MarshalIndent(req.Plan, "    ", "  ")
	object := ""
	if req.Target != "" {
		object = "    object: " + report.Printable(req.Target) + "\n"
	}
	fmt.Fprintf(a.out, "\n%s at %s wants to change the cluster:\n%s    change: %s\n    args: %s\nApply? [y/N] ", report.Printable(req.Builtin), report.Printable(req.Pos), object, plan, report.Printable(fmt.Sprint(req.Args)))
	line, err := a.in.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer: %v", err)
	}
	if ans := strings.ToLower(strings.TrimSpace(line)); ans == "y" || ans == "yes" {
		return nil
	}
	return errors.New("declined at the prompt")
}

// allowList approves only the write built-ins of --allow-builtins.
type allowList struct {
	who   string
	names []string
}

// Approve implements engine.Approver.
func (a allowList) Approve(_ context.Context, req engine.Approval) error {
	if slices.Contains(a.names, req.Builtin) {
		return nil
	}
	return fmt.Errorf("%s allows only %s", a.who, strings.Join(a.names, ", "))
}
