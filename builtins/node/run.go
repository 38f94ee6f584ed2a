package node

import (
	"context"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// maxOutput caps each of a command's stdout and stderr.
const maxOutput = 64 << 10

// RunRequest asks to run a command inside a target's namespaces.
type RunRequest struct {
	// Target is the process whose namespaces (and root) the command enters.
	Target Target `json:"target"`
	// Command is the program and its arguments; a bare name is looked up
	// in the target's PATH, below its root.
	Command []string `json:"command"`
	// Stdin is the command's standard input.
	Stdin string `json:"stdin,omitempty"`
	// TimeoutMS bounds the command; on expiry its process tree is killed.
	TimeoutMS int64 `json:"timeout_ms"`
}

// RunResult is what a command did.
type RunResult struct {
	// Stdout is the command's standard output, at most 64 KiB.
	Stdout string `json:"stdout"`
	// Stderr is the command's standard error, at most 64 KiB.
	Stderr string `json:"stderr"`
	// StdoutTruncated reports that Stdout was cut at 64 KiB.
	StdoutTruncated bool `json:"stdout_truncated"`
	// StderrTruncated reports that Stderr was cut at 64 KiB.
	StderrTruncated bool `json:"stderr_truncated"`
	// ExitCode is the exit status; -1 when killed by a signal, 127 when
	// the program was not found, 126 when it could not be executed.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that ended the command, if any.
	Signal string `json:"signal"`
	// DurationMS is the wall time from start to exit.
	DurationMS float64 `json:"duration_ms"`
	// TimedOut reports that the timeout killed the command.
	TimedOut bool `json:"timed_out"`
	// Error says why the command could not start, if it did not.
	Error string `json:"error"`
}

// Run is run: a command inside a process's namespaces.
var Run = &Row[RunRequest, RunResult]{
	Once:    true,
	Builtin: "run",
	Declare: runSpec,
	Target:  func(r *RunRequest) int { return r.Target.PID },
}

func runSpec(send func(context.Context, *RunRequest) (*RunResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "run",
		Doc: `run runs a command inside a process's namespaces, like
nsenter -t PID -n -p -u -i -m CMD (or kubectl exec without a container
runtime): the command sees the container's network, processes, host name
and files, with its root and working directory at the container's root and
the container process's environment. cmd is a list (program and arguments;
a bare program name is searched in the container's PATH) or a string run
with /bin/sh -c inside the container. A program that cannot be found or
started is a result (exit_code 127 or 126 with error set), not a failure.
On timeout or cancellation the command's whole process tree is killed.`,
		Params: []engine.Param{
			{Name: "cmd", Type: "any", Required: true, Doc: `the command: ["ls", "-l", "/"] or a shell string "ls -l / | head"`},
			{Name: "ns", Type: "dict", Doc: "a handle from enter_ns: the namespaces to join (or give pid=)"},
			{Name: "timeout", Type: "duration", Default: "30s", Doc: "kill the command after this long"},
			{Name: "stdin", Type: "string", Default: "", Doc: "the command's standard input"},
			{Name: "pid", Type: "int", Doc: "the process whose net, pid, uts, ipc and mnt namespaces to join (instead of ns=)"},
		},
		Result: `stdout: standard output (at most 64 KiB)
stderr: standard error (at most 64 KiB)
stdout_truncated: stdout was cut at 64 KiB
stderr_truncated: stderr was cut at 64 KiB
exit_code: exit status; -1 when killed by a signal, 127 not found, 126 not executable
signal: the signal that ended the command, if any
duration_ms: wall time
timed_out: the timeout killed the command
error: why the command could not start, if it did not`,
		Effect: engine.Read,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			t, err := targetArg("run", c.Args, true)
			if err != nil {
				return nil, err
			}
			cmd, err := commandArg(c.Args["cmd"])
			if err != nil {
				return nil, err
			}
			timeout := c.Args.Duration("timeout")
			if timeout <= 0 {
				timeout = 30 * time.Second
			}
			return send(ctx, &RunRequest{Target: *t, Command: cmd, Stdin: c.Args.String("stdin"), TimeoutMS: timeout.Milliseconds()})
		},
	}
}

// commandArg turns cmd= into an argument vector: a list as is, a string
// through /bin/sh -c.
func commandArg(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil, engine.Errorf(engine.KindInvalid, "run: cmd is empty")
		}
		return []string{"/bin/sh", "-c", x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, engine.Errorf(engine.KindInvalid, "run: cmd[%d] is not a string (%v); quote every argument", i, e)
			}
			out = append(out, s)
		}
		if len(out) == 0 || out[0] == "" {
			return nil, engine.Errorf(engine.KindInvalid, "run: cmd is empty")
		}
		return out, nil
	}
	return nil, engine.Errorf(engine.KindInvalid, "run: cmd must be a list of strings or a shell string, got %s", fmt.Sprintf("%T", v))
}
