//go:build linux

// Package nodetest starts real targets for the tests of the node built-ins:
// the seed incident's broken app (examples/broken-pod/app) running as PID 1
// of fresh network, PID, UTS, IPC and mount namespaces, with a private tmpfs
// at /opt holding the incident's configuration:
//
//	/opt/config/config.toml       "[default]\n"
//	/opt/config/additional_file   empty: its presence makes /readyz fail
//	/opt/config/current.toml      symlink to the absolute /opt/config/config.toml
//
// (current.toml resolves only inside the target's root: followed from the
// host through /proc/PID/root it points at the host's /opt/config.) A fresh
// procfs of the target's PID namespace is mounted at /proc and the host
// name is Hostname.
//
// The loopback interface is up inside the network namespace and the app
// listens on :3000 there, so it is reachable only from inside; from the
// host's network namespace the same port refuses connections.
//
// Importing the package installs a hook in its init function: a test binary
// re-executed with the hook's environment variable set does the namespace
// setup and then executes the app in its place. Test binaries need no
// TestMain for it. Starting a target needs root.
package nodetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ConfigDir is the directory of the incident's configuration inside a
// target's mount namespace.
const ConfigDir = "/opt/config"

// Hostname is the host name of a target's UTS namespace.
const Hostname = "kdiag-target"

// Options adjust a target.
type Options struct {
	// Env are extra environment variables of the app, "NAME=value".
	Env []string
	// Port is the port the app listens on; 0 means 3000.
	Port int
	// UnixSockets gives the app unix domain sockets, made before it
	// starts and inherited at these descriptors: a stream socket
	// listening at UnixPath (on the target's /opt tmpfs) at UnixPathFD,
	// one listening at the abstract address UnixAbstract at
	// UnixAbstractFD, and a connected stream pair at UnixPairFDs.
	UnixSockets bool
}

// The unix domain sockets of Options.UnixSockets.
const (
	// UnixPath is the listening socket's path inside the target.
	UnixPath = "/opt/app.sock"
	// UnixAbstract is the abstract socket's name, as /proc/net/unix
	// shows it (a leading "@" for the leading NUL byte).
	UnixAbstract = "@kdiag-nodetest"
	// UnixPathFD and UnixAbstractFD are the listeners' descriptors.
	UnixPathFD, UnixAbstractFD = 100, 101
)

// UnixPairFDs are the descriptors of the connected pair.
var UnixPairFDs = [2]int{102, 103}

// Target is a running broken app in its own namespaces.
type Target struct {
	// PID is the app's process id in the host's PID namespace; inside its
	// own namespace it is 1.
	PID int
	// Port is the port the app listens on inside its network namespace.
	Port int

	tb   testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	once sync.Once
}

// Start builds the broken app (once per content, cached in the temporary
// directory), starts it in new namespaces and waits until it listens. The
// target is killed with SIGKILL when the test ends: as PID 1 of its
// namespace it ignores SIGTERM. Start fails the test when not run as root.
func Start(tb testing.TB, o Options) *Target {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("nodetest: starting a target needs root (new network, PID and mount namespaces); run the tests as root, as CI does")
	}
	if o.Port == 0 {
		o.Port = 3000
	}
	app, err := AppBinary()
	if err != nil {
		tb.Fatalf("nodetest: building the broken app: %v", err)
	}
	spec := initSpec{
		App:      app,
		Args:     []string{app, "--addr", ":" + strconv.Itoa(o.Port)},
		Env:      append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}, o.Env...),
		Hostname: Hostname,
		Unix:     o.UnixSockets,
	}
	cmd, err := spec.command()
	if err != nil {
		tb.Fatalf("nodetest: %v", err)
	}
	t := &Target{Port: o.Port, tb: tb, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = t.out
	cmd.Stderr = t.out
	if err := startPinned(cmd); err != nil {
		tb.Fatalf("nodetest: starting the target: %v", err)
	}
	t.PID = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(t.done)
	}()
	tb.Cleanup(t.Stop)
	if err := t.waitListening(10 * time.Second); err != nil {
		t.Stop()
		tb.Fatalf("nodetest: %v; output:\n%s", err, t.Output())
	}
	return t
}

// Path returns the host path of path as the target sees it, through
// /proc/PID/root. Symbolic links in it resolve against the host's root.
func (t *Target) Path(path string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", t.PID), path)
}

// RemoveFile removes the offending /opt/config/additional_file through the
// target's file system, which makes the app healthy at its next check.
func (t *Target) RemoveFile() error {
	return os.Remove(t.Path(ConfigDir + "/additional_file"))
}

// Output returns what the app printed so far, stdout and stderr.
func (t *Target) Output() string { return t.out.String() }

// WaitOutput waits until the app's output contains substr after the first
// skip bytes, and returns an error after timeout.
func (t *Target) WaitOutput(substr string, skip int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out := t.Output()
		if skip <= len(out) && strings.Contains(out[skip:], substr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodetest: no %q in the app's output after %s; output:\n%s", substr, timeout, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the target with SIGKILL and waits for it; it is idempotent.
func (t *Target) Stop() {
	t.once.Do(func() {
		_ = t.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-t.done:
		case <-time.After(10 * time.Second):
			t.tb.Errorf("nodetest: target %d did not die after SIGKILL", t.PID)
		}
	})
}

// Exited reports whether the target has exited.
func (t *Target) Exited() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// waitListening polls the target's /proc/PID/net/tcp and tcp6 (its network
// namespace's tables, read from the host) until the port is in LISTEN.
func (t *Target) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := fmt.Sprintf(":%04X ", t.Port)
	for {
		if t.Exited() {
			return fmt.Errorf("target exited before listening")
		}
		for _, f := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", t.PID, f))
			for _, line := range strings.Split(string(b), "\n") {
				fields := strings.Fields(line)
				if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", want) && fields[3] == "0A" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target %d not listening on :%d after %s", t.PID, t.Port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
