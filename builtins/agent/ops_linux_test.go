//go:build linux

package agent

import (
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
)

// overSocket serves one call with a Session on the far end of a real
// unix socket, as `kdiag agent session` serves its exec stream, and
// returns the answer.
func overSocket(t *testing.T, op string, req, res any) error {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		served <- Session(context.Background(), c, c)
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	s := newSession("node agent over a socket", struct {
		io.Writer
		io.Closer
	}{uc, closerFunc(uc.CloseWrite)}, uc, func() { uc.Close() }, nil)
	if _, err := s.waitHello(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cerr := s.call(ctx, op, req, res)
	uc.CloseWrite()
	if err := <-served; err != nil {
		t.Fatalf("%s: Session: %v", op, err)
	}
	return cerr
}

// closerFunc is a Close method.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// TestAgentServesEveryOp sends a request of every operation the agent
// declares (find_pid, each row of package node's table, strace_sample) to
// the agent's handler over a real socket, about real processes in their
// own namespaces, and fails for an operation the agent cannot serve: no
// handler, a request it cannot decode, a missing implementation, an
// answer that is not the row's result or not what this machine answers
// (JSON compared where the answer does not change from call to call), or
// no permissions for agent mode. A new row needs an example here.
func TestAgentServesEveryOp(t *testing.T) {
	tg := nodetest.Start(t, nodetest.Options{UnixSockets: true})
	target := node.Target{PID: tg.PID}
	sleep := exec.Command("sleep", "120") // strace_sample's target: a child nobody waits for
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })

	// Each example is a request and, for answers that change between
	// calls, a check in place of the comparison with this machine's.
	type example struct {
		req   any
		check func(res any) bool
	}
	examples := map[string]example{
		"find_pid": {req: &cri.FindPIDRequest{ContainerID: "kdiag-no-such-container", RuntimeEndpoint: "unix:///kdiag-no-such-dir/containerd.sock"}},
		"enter_ns": {req: &node.EnterNSRequest{PID: tg.PID, Namespaces: []string{"net", "mnt"}}},
		"run": {req: &node.RunRequest{Target: target, Command: []string{"cat", nodetest.ConfigDir + "/config.toml"}, TimeoutMS: 10000},
			check: func(v any) bool { r := v.(*node.RunResult); return r.Stdout == "[default]\n" && r.ExitCode == 0 }},
		"http_probe": {req: &node.HTTPProbeRequest{Target: &target, URL: "http://127.0.0.1:3000/readyz", Method: "GET", TimeoutMS: 5000},
			check: func(v any) bool { r := v.(*node.HTTPProbeResult); return r.Status == 500 && !r.OK }},
		"tcp_probe": {req: &node.TCPProbeRequest{Target: &target, HostPort: "127.0.0.1:3000", TimeoutMS: 5000},
			check: func(v any) bool { return v.(*node.TCPProbeResult).OK }},
		"read_file": {req: &node.FileRequest{Target: target, Path: nodetest.ConfigDir + "/current.toml", MaxBytes: 1 << 20}},
		"list_dir":  {req: &node.FileRequest{Target: target, Path: nodetest.ConfigDir}},
		"stat":      {req: &node.FileRequest{Target: target, Path: nodetest.ConfigDir + "/current.toml"}},
		"ps": {req: &node.ProcRequest{Target: target},
			check: func(v any) bool { p := v.(*node.PSResult).Processes; return len(p) > 0 && p[0].PID == tg.PID }},
		"open_files":   {req: &node.ProcRequest{Target: target}},
		"sockets":      {req: &node.ProcRequest{Target: target}},
		"unix_sockets": {req: &node.UnixSocketsRequest{Target: target, MaxSockets: 100}},
		"mounts":       {req: &node.ProcRequest{Target: target}},
		"environ":      {req: &node.ProcRequest{Target: target}},
		"strace_sample": {req: &trace.Request{PID: sleep.Process.Pid, DurationNS: int64(200 * time.Millisecond), MaxEvents: 100, Backend: "ptrace"},
			check: func(v any) bool { r := v.(*trace.Result); return r.PID == sleep.Process.Pid && r.Detached }},
	}
	ctx := context.Background()
	for _, op := range ops() {
		name := op.Name()
		ex, ok := examples[name]
		if !ok {
			t.Errorf("%s: no example request: add one to TestAgentServesEveryOp", name)
			continue
		}
		delete(examples, name)
		if Needs(ModeAgent, name, "ns", "") == nil {
			t.Errorf("%s: agent mode declares no permissions for it", name)
		}
		res := op.NewResult()
		err := overSocket(t, name, ex.req, res)
		local, lerr := op.Serve(ctx, ex.req)
		switch {
		case name == "find_pid":
			// No container runtime answers here: the expected failure
			// must come from find_pid itself, with its kind.
			if err == nil || engine.KindOf(err) == engine.KindFailed || !strings.HasPrefix(err.Error(), "find_pid: ") || lerr == nil || err.Error() != lerr.Error() {
				t.Errorf("find_pid: over the socket %v, locally %v", err, lerr)
			}
		case err != nil || lerr != nil:
			t.Errorf("%s: over the socket %v, locally %v", name, err, lerr)
		case ex.check != nil:
			if !ex.check(res) {
				t.Errorf("%s: unexpected answer over the socket: %s", name, mustJSON(t, res))
			}
		default:
			sameJSON(t, name, res, local)
		}
	}
	for name := range examples {
		t.Errorf("%s: an example for an operation the agent does not declare", name)
	}
}
