//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

// untracedSleep starts `sleep 120`, a child nobody waits for until the
// end of the test (a waited-for child's ptrace stops would go to the
// waiter), and returns its PID.
func untracedSleep(t *testing.T) int {
	t.Helper()
	sleep := exec.Command("sleep", "120")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	return sleep.Process.Pid
}

// waitTraced waits until pid has a tracer.
func waitTraced(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tracerOf(t, pid) == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the target was never traced")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionMultiplexes: over one session, a 30 s strace_sample is in
// flight while 40 concurrent ps calls are answered; cancelling the sample
// returns at once with the cancellation, after the agent confirmed it
// stopped (the target is no longer traced when the call returns), and the
// session goes on serving.
func TestSessionMultiplexes(t *testing.T) {
	s := pipeSession(t)
	pid := untracedSleep(t)
	ctx, cancel := context.WithCancel(context.Background())
	traced := make(chan error, 1)
	go func() {
		var res trace.Result
		traced <- s.call(ctx, "strace_sample", &trace.Request{PID: pid, DurationNS: int64(30 * time.Second), MaxEvents: 100, Backend: "ptrace"}, &res)
	}()
	waitTraced(t, pid)

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ps node.PSResult
			err := s.call(context.Background(), "ps", &node.ProcRequest{Target: node.Target{PID: os.Getpid()}}, &ps)
			if err == nil && len(ps.Processes) == 0 {
				err = errors.New("ps found no process")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("ps beside a running sample: %v", err)
		}
	}
	if tracerOf(t, pid) == "0" {
		t.Fatal("the sample stopped before it was cancelled")
	}
	start := time.Now()
	cancel()
	err := <-traced
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "strace_sample: node agent test: ") {
		t.Errorf("cancelled sample: %v", err)
	}
	if tr := tracerOf(t, pid); tr != "0" {
		t.Errorf("the call returned while the target was still traced by %s", tr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelling took %s", d)
	}
	var st node.StatResult
	if err := s.call(context.Background(), "stat", &node.FileRequest{Target: node.Target{PID: os.Getpid()}, Path: "/"}, &st); err != nil {
		t.Errorf("stat after the cancellation: %v", err)
	}
}

// smallFrames lowers the frame cap (transcript.MaxLineBytes) for a test.
func smallFrames(t *testing.T, n int) {
	old := transcript.MaxLineBytes
	transcript.MaxLineBytes = n
	t.Cleanup(func() { transcript.MaxLineBytes = old })
}

// TestSessionFrameCap: with the cap at 1 MiB, a result that would be a
// larger frame is answered as an error and the session goes on; a request
// over the cap is refused by kdiag before it is sent; an agent that gets
// a frame over the cap answers a session error and ends the session.
func TestSessionFrameCap(t *testing.T) {
	smallFrames(t, 1<<20)
	s := pipeSession(t)
	path := filepath.Join(t.TempDir(), "hostile")
	// 600 KiB of control bytes: valid UTF-8, six bytes each in JSON.
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, 600<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	var rf node.ReadFileResult
	err := s.call(context.Background(), "read_file", &node.FileRequest{Target: node.Target{PID: os.Getpid()}, Path: path, MaxBytes: 1 << 20}, &rf)
	if err == nil || !strings.HasPrefix(err.Error(), "read_file: node agent: the result is 3686") || !strings.HasSuffix(err.Error(), "bytes of JSON, over the 1047552-byte frame cap (what a transcript line holds): ask for less") {
		t.Errorf("hostile file: %v", err)
	}
	if err := s.call(context.Background(), "read_file", &node.FileRequest{Target: node.Target{PID: os.Getpid()}, Path: path, MaxBytes: 1000}, &rf); err != nil || !rf.Truncated || len(rf.Content) != 1000 {
		t.Errorf("the session after a refused result: %+v %v", rf, err)
	}
	big := &node.RunRequest{Target: node.Target{PID: os.Getpid()}, Command: []string{"true"}, Stdin: strings.Repeat("x", 2<<20)}
	var rr node.RunResult
	if err := s.call(context.Background(), "run", big, &rr); engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "over the 1048576-byte frame cap of the node agent") {
		t.Errorf("oversized request: %v", err)
	}

	inR, inW := io.Pipe()
	var out bytes.Buffer
	go func() {
		io.WriteString(inW, `{"v":2,"id":1,"op":"run","request":{"stdin":"`+strings.Repeat("x", 2<<20))
		inW.Close()
	}()
	err = Session(context.Background(), inR, &out)
	if err == nil || err.Error() != "node agent: refused a frame over the 1048576-byte cap: session closed" {
		t.Errorf("agent reading an oversized frame: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], `"id":0,"error":{"message":"node agent: refused a frame over the 1048576-byte cap: session closed"}`) {
		t.Errorf("agent's answers: %q", lines)
	}
}

// TestSessionRefusesOversizedAnswer: kdiag's side of a session stops
// reading an answer at the frame cap (an agent cannot produce one, so this
// one is written by hand): the call in flight fails naming the agent, the
// transport is stopped and later calls fail at once.
func TestSessionRefusesOversizedAnswer(t *testing.T) {
	smallFrames(t, 1<<20)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(stopped); outR.CloseWithError(errors.New("stopped")) }) }
	go io.Copy(io.Discard, inR)
	written := make(chan int64, 1)
	go func() {
		io.WriteString(outW, `{"v":2,"id":0,"hello":{"pid":1}}`+"\n")
		n, _ := io.Copy(outW, io.LimitReader(neverEnding('x'), 64<<20))
		written <- n
	}()
	s := newSession("node agent ns/hostile on node n", inW, outR, stop, nil)
	if _, err := s.waitHello(context.Background(), "ps"); err != nil {
		t.Fatal(err)
	}
	var ps node.PSResult
	err := s.call(context.Background(), "ps", &node.ProcRequest{Target: node.Target{PID: 1}}, &ps)
	if !errors.Is(err, errBroken) || err.Error() != "ps: node agent ns/hostile on node n: the session broke during the call: answered a frame over the 1048576-byte cap: refused" {
		t.Errorf("oversized answer: %v", err)
	}
	<-stopped
	if n := <-written; n > 2<<20 {
		t.Errorf("%d bytes were read of the oversized answer", n)
	}
	if err := s.call(context.Background(), "ps", &node.ProcRequest{Target: node.Target{PID: 1}}, &ps); !errors.Is(err, errBroken) {
		t.Errorf("a call after the session broke: %v", err)
	}
}

// neverEnding is an endless stream of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// TestSessionStalledStream: a stream that takes no request (a stalled
// connection; written by hand, no real component stalls on demand) does
// not hold a call past its deadline: the call ends with its context's
// error, the session is ended and the next call fails at once.
func TestSessionStalledStream(t *testing.T) {
	inR, inW := io.Pipe() // nobody reads the agent's input
	outR, outW := io.Pipe()
	go io.WriteString(outW, `{"v":2,"id":0,"hello":{"pid":1}}`+"\n")
	stopped := make(chan struct{})
	var once sync.Once
	s := newSession("node agent ns/stalled on node n", inW, outR, func() {
		once.Do(func() {
			close(stopped)
			inR.CloseWithError(errors.New("stopped"))
			outW.CloseWithError(errors.New("stopped"))
		})
	}, nil)
	if _, err := s.waitHello(context.Background(), "ps"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var ps node.PSResult
	err := s.call(ctx, "ps", &node.ProcRequest{Target: node.Target{PID: 1}}, &ps)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "ps: node agent ns/stalled on node n: ") {
		t.Errorf("call on a stalled stream: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call took %s, its deadline was 300ms", d)
	}
	<-stopped
	err = s.call(context.Background(), "ps", &node.ProcRequest{Target: node.Target{PID: 1}}, &ps)
	if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), "the stream took no frame until a call ended (stalled)") {
		t.Errorf("the next call: %v", err)
	}
}
