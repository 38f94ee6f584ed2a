//go:build linux

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
)

// serveOnce sends one envelope to a Session through pipes (ID 1 when it
// has none), returns the answer that follows the hello, and ends the
// session.
func serveOnce(t *testing.T, env Request) Response {
	t.Helper()
	if env.ID == 0 {
		env.ID = 1
	}
	b, _ := json.Marshal(env)
	lines := rawSession(t, string(b)+"\n", 2)
	var resp Response
	if err := json.Unmarshal([]byte(lines[1]), &resp); err != nil {
		t.Fatalf("decode the answer %q: %v", lines[1], err)
	}
	return resp
}

// rawSession writes input to a Session, reads n frames (the hello first),
// then closes the session's input and waits for it to end.
func rawSession(t *testing.T, input string, n int) []string {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Session(context.Background(), inR, outW); outW.Close() }()
	go io.WriteString(inW, input)
	rd := bufio.NewReader(outR)
	var lines []string
	for len(lines) < n {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("frame %d: %v (after %q)", len(lines)+1, err, lines)
		}
		lines = append(lines, l)
	}
	inW.Close()
	go io.Copy(io.Discard, outR)
	if err := <-done; err != nil {
		t.Fatalf("Session: %v", err)
	}
	if !strings.HasPrefix(lines[0], `{"v":2,"id":0,"hello":{"pid":`+strconv.Itoa(os.Getpid())+`}}`) {
		t.Errorf("hello %q", lines[0])
	}
	return lines
}

// pipeSession returns kdiag's side of a session with a Session served in
// this process through pipes, closed at the end of the test.
func pipeSession(t *testing.T) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		err := Session(context.Background(), inR, outW)
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
	}()
	s := newSession("node agent test", inW, outR, func() { inR.CloseWithError(io.ErrClosedPipe) }, ended)
	if _, err := s.waitHello(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(context.Background()) })
	return s
}

// wireCall is one request over a session, decoded as kdiag's side does.
func wireCall[Res any](t *testing.T, op string, req any) (*Res, error) {
	t.Helper()
	s := pipeSession(t)
	res := new(Res)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.call(ctx, op, req, res); err != nil {
		return nil, err
	}
	return res, nil
}

// sameJSON fails unless a and b encode to the same JSON.
func sameJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("%s: over the agent protocol\n%s\nlocally\n%s", what, ja, jb)
	}
}

// TestServeAnswersLikeLocal sends requests about a real target (the seed's
// broken app in its own namespaces) through the agent protocol and
// compares each answer with node.Local's: same result JSON, and errors
// keep their kind and message.
func TestServeAnswersLikeLocal(t *testing.T) {
	tg := nodetest.Start(t, nodetest.Options{})
	ctx := context.Background()
	target := node.Target{PID: tg.PID}

	h, err := wireCall[node.NSHandle](t, "enter_ns", &node.EnterNSRequest{PID: tg.PID, Namespaces: []string{"net", "mnt"}})
	if err != nil {
		t.Fatal(err)
	}
	lh, _ := node.EnterNS.Local(ctx, &node.EnterNSRequest{PID: tg.PID, Namespaces: []string{"net", "mnt"}})
	sameJSON(t, "enter_ns", h, lh)

	fr := &node.FileRequest{Target: target, Path: nodetest.ConfigDir + "/config.toml", MaxBytes: 1 << 20}
	rf, err := wireCall[node.ReadFileResult](t, "read_file", fr)
	if err != nil {
		t.Fatal(err)
	}
	lrf, _ := node.ReadFile.Local(ctx, fr)
	sameJSON(t, "read_file", rf, lrf)
	if rf.Content != "[default]\n" {
		t.Errorf("read_file content %q", rf.Content)
	}

	fr = &node.FileRequest{Target: target, Path: nodetest.ConfigDir}
	ld, err := wireCall[node.ListDirResult](t, "list_dir", fr)
	if err != nil {
		t.Fatal(err)
	}
	lld, _ := node.ListDir.Local(ctx, fr)
	sameJSON(t, "list_dir", ld, lld)

	pr := &node.ProcRequest{Target: target}
	env, err := wireCall[node.EnvironResult](t, "environ", pr)
	if err != nil {
		t.Fatal(err)
	}
	lenv, _ := node.Environ.Local(ctx, pr)
	sameJSON(t, "environ", env, lenv)

	hp := &node.HTTPProbeRequest{Target: &node.Target{PID: tg.PID, Handle: h}, URL: "http://127.0.0.1:3000/readyz", Method: "GET", TimeoutMS: 5000}
	probe, err := wireCall[node.HTTPProbeResult](t, "http_probe", hp)
	if err != nil {
		t.Fatal(err)
	}
	if probe.Status != 500 || probe.OK || !strings.Contains(probe.Body, "not ready") {
		t.Errorf("http_probe over the protocol: %+v", probe)
	}

	// An expected failure keeps its kind and message.
	gone := &node.EnterNSRequest{PID: 1 << 30, Namespaces: []string{"net"}}
	_, werr := wireCall[node.NSHandle](t, "enter_ns", gone)
	_, lerr := node.EnterNS.Local(ctx, gone)
	if lerr == nil || werr == nil || werr.Error() != lerr.Error() || engine.KindOf(werr) != engine.KindOf(lerr) || engine.KindOf(werr) != engine.KindGone {
		t.Errorf("enter_ns of a missing process: over the protocol %v (%s), locally %v (%s)", werr, engine.KindOf(werr), lerr, engine.KindOf(lerr))
	}
}

// TestServeVersionMismatch: an agent refuses an envelope of another
// protocol version, and kdiag refuses an answer of another version, both
// naming the two versions.
func TestServeVersionMismatch(t *testing.T) {
	resp := serveOnce(t, Request{V: ProtocolVersion + 1, Op: "ps", Request: json.RawMessage(`{"target":{"pid":1}}`)})
	want := "node agent speaks protocol v2, this kdiag speaks v3: use an agent image of the same kdiag version (--agent-image)"
	if resp.V != ProtocolVersion || resp.ID != 1 || resp.Error == nil || resp.Error.Message != want || resp.Result != nil {
		t.Errorf("agent's answer to a v3 request: %+v", resp)
	}

	var res node.PSResult
	err := decodeResponse("ps", "node agent ns/kdiag-agent-x", &Response{V: 3, ID: 1, Result: json.RawMessage(`{"processes":[]}`)}, &res)
	var verr *VersionError
	if !errors.As(err, &verr) || verr.Agent != 3 || verr.Kdiag != ProtocolVersion ||
		err.Error() != "ps: node agent ns/kdiag-agent-x: node agent speaks protocol v3, this kdiag speaks v2: use an agent image of the same kdiag version (--agent-image)" {
		t.Errorf("kdiag's decoding of a v3 answer: %v", err)
	}
	if engine.KindOf(err) != engine.KindFailed {
		t.Errorf("a version mismatch is an infrastructure failure, got kind %s", engine.KindOf(err))
	}
}

// TestServeRejectsBadEnvelopes: an unknown op, a request that is not JSON.
func TestServeRejectsBadEnvelopes(t *testing.T) {
	resp := serveOnce(t, Request{V: ProtocolVersion, Op: "format_disk", Request: json.RawMessage(`{}`)})
	if resp.Error == nil || !strings.HasPrefix(resp.Error.Message, `node agent: unknown op "format_disk" (protocol v2 serves enter_ns, environ, find_pid,`) {
		t.Errorf("unknown op: %+v", resp.Error)
	}
	resp = serveOnce(t, Request{V: ProtocolVersion, Op: "read_file", Request: json.RawMessage(`{"target":"x"}`)})
	if resp.Error == nil || !strings.HasPrefix(resp.Error.Message, "read_file: node agent: cannot decode the request: ") || resp.Error.Kind != "" {
		t.Errorf("bad request: %+v", resp.Error)
	}
	lines := rawSession(t, "not json\n", 2)
	if !strings.HasPrefix(lines[1], `{"v":2,"id":0,"error":{"message":"node agent: cannot decode the request envelope: `) {
		t.Errorf("garbage envelope: %s", lines[1])
	}
}

// TestServeStopsWhenStdinCloses: closing the session's standard input
// (kdiag went away) cancels a running strace_sample, which detaches from its
// target; the cancellation comes back with its kind. (The target is a
// child nobody waits for: a waited-for child's ptrace stops would go to
// the waiter.)
func TestServeStopsWhenStdinCloses(t *testing.T) {
	sleep := exec.Command("sleep", "120")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	tg := struct{ PID int }{sleep.Process.Pid}
	body, _ := json.Marshal(&trace.Request{PID: tg.PID, DurationNS: int64(30 * time.Second), FollowForks: true, MaxEvents: 100, Backend: "ptrace"})
	line, _ := json.Marshal(Request{V: ProtocolVersion, ID: 1, Op: "strace_sample", Request: body})
	inR, inW := io.Pipe()
	var out strings.Builder
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Session(context.Background(), inR, &out) }()
	inW.Write(append(line, '\n'))
	deadline := time.Now().Add(10 * time.Second)
	for tracerOf(t, tg.PID) == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the target was never traced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Session did not stop when its input closed")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to stop a 30s sample", d)
	}
	frames := strings.Split(strings.TrimSpace(out.String()), "\n")
	var resp Response
	if len(frames) != 2 || json.Unmarshal([]byte(frames[1]), &resp) != nil {
		t.Fatalf("frames %q, want a hello and an answer", frames)
	}
	if resp.ID != 1 || resp.Error == nil || resp.Error.Kind != engine.KindCancelled || !strings.HasPrefix(resp.Error.Message, "strace_sample: cancelled after") {
		t.Errorf("answer %s", out.String())
	}
	if tr := tracerOf(t, tg.PID); tr != "0" {
		t.Errorf("target still traced by %s", tr)
	}
}

// tracerOf returns the TracerPid of a process.
func tracerOf(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
