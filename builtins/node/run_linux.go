//go:build linux

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// defaultPath is the PATH of a container whose process has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func init() {
	Run.Linux = localRun
}

// localRun joins the target's namespaces on a thread of its own, moves to its
// root when the mount namespace is joined, and forks the command from that
// thread, so the command starts inside everything. The thread waits for
// the command and then ends.
func localRun(ctx context.Context, req *RunRequest) (*RunResult, error) {
	if len(req.Command) == 0 || req.Command[0] == "" {
		return nil, engine.Errorf(engine.KindInvalid, "run: cmd is empty")
	}
	t := &req.Target
	names := t.namespaces()
	files, err := openNamespaces("run", t, names)
	if err != nil {
		return nil, err
	}
	defer files.close()
	env := targetEnv(t.PID)
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}

	res := &RunResult{}
	stdout, stderr := newCappedBuffer(maxOutput), newCappedBuffer(maxOutput)
	started := make(chan int, 1)
	done := make(chan struct{})
	var joinErr error
	var t0 time.Time
	var state *os.ProcessState
	go func() {
		defer close(done)
		onNewThread(func() {
			if err := files.join(); err != nil {
				joinErr = err
				started <- 0
				return
			}
			cmd, msg, code := command(req, env, slices.Contains(names, "mnt"), slices.Contains(names, "pid"))
			if cmd == nil {
				res.Error, res.ExitCode = msg, code
				started <- 0
				return
			}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			t0 = time.Now()
			if err := cmd.Start(); err != nil {
				res.Error, res.ExitCode = startError(req.Command[0], err)
				started <- 0
				return
			}
			started <- cmd.Process.Pid
			_ = cmd.Wait()
			state = cmd.ProcessState
		})
	}()

	if pid := <-started; pid > 0 {
		select {
		case <-done:
		case <-ctx.Done():
			killTree(pid)
			<-done
			res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
			if !res.TimedOut {
				return nil, fmt.Errorf("run: %s: %w", strings.Join(req.Command, " "), ctx.Err())
			}
		}
	} else {
		<-done
	}
	if joinErr != nil {
		return nil, joinFailed("run", t.PID, joinErr)
	}
	if state != nil {
		res.DurationMS = float64(time.Since(t0).Microseconds()) / 1000
		res.ExitCode = state.ExitCode()
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	}
	res.Stdout, res.StdoutTruncated = stdout.String(), stdout.Truncated()
	res.Stderr, res.StderrTruncated = stderr.String(), stderr.Truncated()
	return res, nil
}

// command builds the exec.Cmd on the joined thread, where file names
// resolve inside the target's root. A program that cannot be found is
// reported as a shell would: a message and exit code 127.
func command(req *RunRequest, env []string, inRoot, inPIDNS bool) (cmd *exec.Cmd, msg string, code int) {
	name := req.Command[0]
	path, err := lookPath(name, env)
	if err != nil {
		where := "the node's"
		if inRoot {
			where = "the container's"
		}
		switch {
		case !strings.Contains(name, "/"):
			return nil, fmt.Sprintf("%s: executable file not found in %s PATH (%s)", name, where, envValue(env, "PATH")), 127
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Sprintf("%s: no such file or directory in %s file system", name, where), 127
		}
		return nil, fmt.Sprintf("%s: cannot execute: permission denied", name), 126
	}
	cmd = &exec.Cmd{
		Path:        path,
		Args:        req.Command,
		Env:         env,
		Stdin:       strings.NewReader(req.Stdin),
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		// A background grandchild holding the output pipes open must not
		// keep run waiting.
		WaitDelay: 2 * time.Second,
	}
	if inRoot {
		cmd.Dir = "/"
	}
	if !inPIDNS {
		// Die with kdiag. Not inside another PID namespace: there the
		// child's parent is invisible (getppid returns 0), and the Go
		// runtime's check for an already dead parent would kill it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return cmd, "", 0
}

// lookPath finds a program like a shell does, in the PATH of env, on the
// calling thread's root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// startError reports a command that could not start as a shell would.
func startError(name string, err error) (string, int) {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("%s: no such file or directory (a missing interpreter or loader?)", name), 127
	}
	return fmt.Sprintf("%s: cannot execute: %v", name, err), 126
}

// targetEnv is the target process's environment, the one kubectl exec
// would give a command in its container; it always has a PATH.
func targetEnv(pid int) []string {
	b, _ := os.ReadFile(procPath(pid, "environ"))
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 && bytes.IndexByte(kv, '=') > 0 {
			env = append(env, string(kv))
		}
	}
	if envValue(env, "PATH") == "" {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
