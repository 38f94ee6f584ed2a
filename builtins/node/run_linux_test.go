//go:build linux

package node_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

func TestRunInsideTheContainer(t *testing.T) {
	_, h := start(t, nodetest.Options{})
	run := func(args engine.Args) *node.RunResult {
		t.Helper()
		args["ns"] = h
		return must[*node.RunResult](t, "run", args)
	}
	ls := run(engine.Args{"cmd": []any{"ls", "/opt/config"}})
	if ls.ExitCode != 0 || ls.Stdout != "additional_file\nconfig.toml\ncurrent.toml\n" {
		t.Errorf("ls /opt/config = %+v", ls)
	}
	if r := run(engine.Args{"cmd": []any{"hostname"}}); r.Stdout != nodetest.Hostname+"\n" {
		t.Errorf("hostname = %q, want the target's UTS namespace's", r.Stdout)
	}
	// The shell is the container's; $$ is a PID of the container's PID
	// namespace, where the app is 1, and its /proc is the container's.
	sh := run(engine.Args{"cmd": "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"})
	lines := strings.Split(sh.Stdout, "\n")
	if sh.ExitCode != 0 || len(lines) < 2 || len(lines[0]) > 3 || !strings.Contains(lines[1], "--addr :3000") {
		t.Errorf("shell in the container: %+v", sh)
	}
	if r := run(engine.Args{"cmd": []any{"cat"}, "stdin": "hello"}); r.Stdout != "hello" {
		t.Errorf("cat with stdin = %+v", r)
	}
	if r := run(engine.Args{"cmd": "echo oops >&2; exit 3"}); r.ExitCode != 3 || r.Stderr != "oops\n" {
		t.Errorf("exit 3 = %+v", r)
	}
	big := run(engine.Args{"cmd": "head -c 100000 /dev/zero | tr '\\0' x"})
	if len(big.Stdout) != 64<<10 || !big.StdoutTruncated || big.ExitCode != 0 {
		t.Errorf("100000 bytes of output: kept %d, truncated=%v, exit %d", len(big.Stdout), big.StdoutTruncated, big.ExitCode)
	}
}

func TestRunMissingProgramIsAResult(t *testing.T) {
	_, h := start(t, nodetest.Options{})
	r := must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"no-such-tool", "-v"}, "ns": h})
	if r.ExitCode != 127 || !strings.Contains(r.Error, `no-such-tool: executable file not found in the container's PATH`) {
		t.Errorf("missing program: %+v", r)
	}
	r = must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"/opt/config/nope"}, "ns": h})
	if r.ExitCode != 127 || !strings.Contains(r.Error, "/opt/config/nope: no such file or directory in the container's file system") {
		t.Errorf("missing path: %+v", r)
	}
	r = must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"/opt/config/config.toml"}, "ns": h})
	if r.ExitCode != 126 || !strings.Contains(r.Error, "permission denied") {
		t.Errorf("not executable: %+v", r)
	}
	_, err := call(t, "run", engine.Args{"cmd": []any{}, "ns": h})
	wantErr(t, err, engine.KindInvalid, "run: cmd is empty")
	_, err = call(t, "run", engine.Args{"cmd": []any{"ls"}})
	wantErr(t, err, engine.KindInvalid, "run: give pid=")
}

func TestRunTimeoutKillsTheProcessTree(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	t0 := time.Now()
	r := must[*node.RunResult](t, "run", engine.Args{"cmd": "sleep 60 & sleep 61; echo never", "ns": h, "timeout": "500ms"})
	if !r.TimedOut || r.Signal != "killed" || r.Stdout != "" || time.Since(t0) > 5*time.Second {
		t.Errorf("timed-out run = %+v after %s", r, time.Since(t0))
	}
	eventually(t, 3*time.Second, "the background sleep killed too", func() bool {
		ps := must[*node.PSResult](t, "ps", engine.Args{"pid": int64(tg.PID)})
		for _, p := range ps.Processes {
			if p.Comm == "sleep" && p.State != "Z" {
				return false
			}
		}
		return true
	})
}

func TestEnterNSChecksTheProcess(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	if h["pid"] != int64(tg.PID) || len(h["namespaces"].([]any)) != 5 {
		t.Errorf("handle = %v", h)
	}
	for ns, ino := range h["inodes"].(map[string]any) {
		if want := readlink(t, fmt.Sprintf("/proc/%d/ns/%s", tg.PID, ns)); ino != want {
			t.Errorf("inode of %s = %v, want %s", ns, ino, want)
		}
	}
	_, err := call(t, "enter_ns", engine.Args{"pid": int64(tg.PID), "namespaces": []any{"net", "bogus"}})
	wantErr(t, err, engine.KindInvalid, `enter_ns: unknown namespace "bogus"`)
	_, err = call(t, "enter_ns", engine.Args{"pid": int64(tg.PID), "namespaces": []any{"user"}})
	wantErr(t, err, engine.KindInvalid, "enter_ns: joining the user namespace is not supported")

	// A handle without the net namespace cannot probe.
	uts := asArg(t, must[*node.NSHandle](t, "enter_ns", engine.Args{"pid": int64(tg.PID), "namespaces": []any{"uts"}}))
	_, err = call(t, "http_probe", engine.Args{"url": readyz, "ns": uts})
	wantErr(t, err, engine.KindInvalid, "does not include the net namespace")
	// Only the handle's namespaces are joined: the node's file system.
	r := must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"hostname"}, "ns": uts})
	if r.Stdout != nodetest.Hostname+"\n" {
		t.Errorf("hostname with a uts-only handle = %+v", r)
	}

	// A handle whose process was replaced is refused.
	forged := asArg(t, h)
	forged["inodes"].(map[string]any)["net"] = "net:[1]"
	_, err = call(t, "run", engine.Args{"cmd": []any{"true"}, "ns": forged})
	wantErr(t, err, engine.KindGone, "is not the one enter_ns saw: its net namespace is net:[")

	tg.Stop()
	_, err = call(t, "run", engine.Args{"cmd": []any{"true"}, "ns": h})
	wantErr(t, err, engine.KindGone, "is gone")
	_, err = call(t, "enter_ns", engine.Args{"pid": int64(tg.PID)})
	wantErr(t, err, engine.KindGone, "enter_ns: process")

	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, "read_file", engine.Args{"path": "/etc/hostname", "pid": int64(done.Process.Pid)})
	wantErr(t, err, engine.KindGone, "read_file: process")
}

func TestRunCancelKillsTheProcessTree(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	handle := &node.NSHandle{}
	if err := engine.Args(h).Decode(handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := node.Run.Local(ctx, &node.RunRequest{Target: node.Target{PID: tg.PID, Handle: handle}, Command: []string{"/bin/sh", "-c", "sleep 60 & sleep 61"}, TimeoutMS: 30000})
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "run: ") {
		t.Fatalf("cancelled run: %v", err)
	}
	eventually(t, 3*time.Second, "no sleep left in the container", func() bool {
		ps := must[*node.PSResult](t, "ps", engine.Args{"pid": int64(tg.PID)})
		for _, p := range ps.Processes {
			if p.Comm == "sleep" && p.State != "Z" {
				return false
			}
		}
		return true
	})
}
