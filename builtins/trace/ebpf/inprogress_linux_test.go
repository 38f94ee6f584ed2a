//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"encoding/binary"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSampleCallInProgressAtAttach: a python server blocked in accept
// before the programs were attached; the accept's exit is still recorded,
// with its arguments from the registers and the peer address it wrote
// (captured at the exit), so a request served by it can be attributed.
// Started, Stop and OnCall are exercised on the way.
func TestSampleCallInProgressAtAttach(t *testing.T) {
	assertUnloaded(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	py := exec.Command("python3", "-c", `import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, a = s.accept(); c.close()
import time; time.sleep(30)`, strconv.Itoa(port))
	out, _ := py.StdoutPipe()
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { py.Process.Kill(); py.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // into accept

	started, stop := make(chan struct{}), make(chan struct{})
	var client string
	go func() {
		<-started
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			client = c.LocalAddr().String()
			c.Close()
		}
	}()
	seen := 0
	res, err := Sample(context.Background(), Options{TGIDs: []int{py.Process.Pid}, Duration: 10 * time.Second, MaxEvents: 1000,
		Started: func() { close(started) }, Stop: stop,
		OnCall: func(c *Call) {
			seen++
			if c.Nr == unix.SYS_ACCEPT4 || c.Nr == unix.SYS_ACCEPT {
				close(stop)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(res.EndNS - res.StartNS); d > 5*time.Second {
		t.Errorf("the sample lasted %s: Stop did not end it", d)
	}
	finished := 0
	for _, c := range res.Calls {
		if c.Finished {
			finished++
		}
	}
	if seen != finished || seen == 0 {
		t.Errorf("OnCall saw %d calls, the result has %d finished", seen, finished)
	}
	var acc *Call
	for i := range res.Calls {
		if c := &res.Calls[i]; c.Nr == unix.SYS_ACCEPT4 || c.Nr == unix.SYS_ACCEPT {
			acc = c
		}
	}
	if acc == nil || !acc.Finished || acc.Ret < 0 {
		t.Fatalf("the accept in progress at attach was not recorded as finished: %+v", acc)
	}
	if acc.DurNS != 0 {
		t.Errorf("entry unknown: want a duration of 0, got %d", acc.DurNS)
	}
	var peer, plen []byte
	for _, c := range acc.Captured {
		switch {
		case c.Kind == CaptureBytes && c.Arg == 1:
			peer = []byte(c.Value)
		case c.Kind == CaptureBytes && c.Arg == 2:
			plen = []byte(c.Value)
		}
	}
	if len(plen) != 4 || int(binary.LittleEndian.Uint32(plen)) != len(peer) || len(peer) < 8 {
		t.Fatalf("peer address not captured at exit: len %v, %d bytes", plen, len(peer))
	}
	gotPort := int(binary.BigEndian.Uint16(peer[2:4]))
	if want := ":" + strconv.Itoa(gotPort); client == "" || client[len(client)-len(want):] != want {
		t.Errorf("captured peer port %d, the client was %s", gotPort, client)
	}
}

// TestSampleRescan: processes found by Rescan are traced from then on,
// and a rescanned set does not end the sample when its first member exits.
func TestSampleRescan(t *testing.T) {
	assertUnloaded(t)
	first := start(t, "sh", "-c", "sleep 0.2")
	late := start(t, "sh", "-c", "while :; do cat /etc/hostname >/dev/null; sleep 0.02; done")
	res, err := Sample(context.Background(), Options{TGIDs: []int{first.Process.Pid}, FollowForks: true, Duration: 800 * time.Millisecond, MaxEvents: 1000,
		Rescan: func() []int { return []int{first.Process.Pid, late.Process.Pid} }, RescanEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(res.EndNS - res.StartNS); d < 700*time.Millisecond {
		t.Errorf("the sample ended after %s, when its first process exited", d)
	}
	byLate := 0
	for _, c := range res.Calls {
		if c.TGID == late.Process.Pid {
			byLate++
		}
	}
	if byLate == 0 {
		t.Error("no call of the process found by Rescan")
	}
}

// TestSampleBusyLoopFirstCalls: a shell busy-waiting on a missing file
// makes a call every few microseconds; at most one kept call (the one in
// progress at attach) lacks its path. With sys_exit attached before
// sys_enter, every call between the two attachments was taken for one in
// progress at attach and the first 50 kept calls had no path.
func TestSampleBusyLoopFirstCalls(t *testing.T) {
	assertUnloaded(t)
	for round := 0; round < 5; round++ {
		sh := start(t, "sh", "-c", "while [ ! -e /nonexistent/kdiag-busy ]; do :; done")
		res, err := Sample(context.Background(), Options{TGIDs: []int{sh.Process.Pid}, Duration: 200 * time.Millisecond, MaxEvents: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Calls) != 50 {
			t.Fatalf("%d calls kept, want 50", len(res.Calls))
		}
		noPath := 0
		for _, c := range res.Calls {
			if len(c.Captured) == 0 {
				noPath++
			}
		}
		if noPath > 1 {
			t.Fatalf("round %d: %d of the first 50 calls have no captured path; want at most the one in progress at attach", round, noPath)
		}
		sh.Process.Kill()
		sh.Wait()
	}
}
