package trace

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// TestRequestDependencyRefused: a Go server's readiness handler dials a
// dependency that refuses (nothing listens), while a background goroutine
// keeps dialling another address. The request's events hold the connect to
// the dependency and its outcome, which a non-blocking connect only learns
// from getsockopt(SO_ERROR): ECONNREFUSED, decoded on both backends.
func TestRequestDependencyRefused(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "dependent_server")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/dependent_server").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	forBackends(t, func(t *testing.T, backend string) {
		bgAddr := listen(t, func(c net.Conn) { c.Close() })
		dep := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
		port := freePort(t)
		c := startContainer(t, fmt.Sprintf("%s 127.0.0.1:%d %s %s >/dev/null; sleep 1", bin, port, dep, bgAddr))
		waitListening(t, port)
		res, err := straceRunSpec(context.Background(), engine.Args{
			"pid": int64(c.pid), "scope": "container", "probe": fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
			"duration": "30s", "max_events": int64(100000), "backend": backend,
		})
		if err != nil {
			t.Fatal(err)
		}
		rq := res.Request
		if rq == nil || rq.HTTP == nil || !rq.Found {
			t.Fatalf("request not followed: %+v", rq)
		}
		if rq.HTTP.Status != 503 {
			t.Errorf("probe status %d, want 503", rq.HTTP.Status)
		}
		connectFD, refused := "", false
		for _, e := range rq.Events {
			switch {
			case e.Name == "connect" && len(e.Args) > 1 && e.Args[1] == dep:
				connectFD = e.Args[0]
			case e.Name == "getsockopt" && len(e.Args) > 3 && e.Args[0] == connectFD && e.Args[2] == "SO_ERROR":
				refused = e.Args[3] == "[ECONNREFUSED]"
			}
		}
		if connectFD == "" || !refused {
			for _, e := range rq.Events {
				t.Logf("request %d/%d %.3f %s %v %v %s", e.PID, e.TID, e.StartMS, e.Name, e.Args, e.Ret, e.Errno)
			}
			t.Fatalf("the request's events lack the connect to %s (fd %q) and its ECONNREFUSED (%v)", dep, connectFD, refused)
		}
		t.Logf("request: threads %v, %d events, %.1f-%.1f ms", rq.Threads, len(rq.Events), rq.StartMS, rq.EndMS)
	})
}

// TestRequestDependencyNoAnswer: the readiness-shapes app's /readyz sends a
// query to a dependency that accepts it and never answers, and gives up
// after 2 s, while a background goroutine keeps reading a decoy file. The
// Go runtime parks the handler meanwhile and may resume it on any thread:
// the request's events hold the connect to the dependency, the query
// written on it and its close, and no answer read from it, whichever
// threads carried them, on both backends.
func TestRequestDependencyNoAnswer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "readiness_app")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/readiness-shapes/app").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, _, decoy := flagAndDecoy(t)
	forBackends(t, func(t *testing.T, backend string) {
		// A dependency that takes the query and never answers.
		dep := listen(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c); c.Close() })
		port := freePort(t)
		c := startContainer(t, fmt.Sprintf("%s --addr 127.0.0.1:%d --query %s --decoy %s 2>/dev/null; sleep 1", bin, port, dep, decoy))
		waitListening(t, port)
		// The kubelet probes the same handler every 3 s (its timeout 3 s),
		// so the server is busy with it during much of kdiag's request.
		kubelet, stopKubelet := context.WithCancel(context.Background())
		defer stopKubelet()
		go func() {
			client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for kubelet.Err() == nil {
				if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err == nil {
					resp.Body.Close()
				}
				select {
				case <-kubelet.Done():
				case <-time.After(time.Second):
				}
			}
		}()
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Millisecond)
		res, err := straceRunSpec(context.Background(), engine.Args{
			"pid": int64(c.pid), "scope": "container", "probe": fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
			"duration": "5s", "max_events": int64(100000), "backend": backend, "until_path": []any{filepath.Dir(decoy) + "/"},
		})
		stopKubelet()
		if err != nil {
			t.Fatal(err)
		}
		rq := res.Request
		if rq == nil || rq.HTTP == nil || !rq.Found {
			t.Fatalf("request not followed: %+v", rq)
		}
		if rq.HTTP.Status != 503 {
			t.Errorf("probe status %d, want 503", rq.HTTP.Status)
		}
		var fd string
		var sent, answered, closed bool
		for _, e := range rq.Events {
			switch {
			case e.Name == "connect" && len(e.Args) > 1 && e.Args[1] == dep:
				fd = e.Args[0]
			case fd == "" || len(e.Args) == 0 || e.Args[0] != fd:
			case e.Name == "write" && e.Ret != nil && *e.Ret > 0:
				sent = true
			case e.Name == "read" && e.Ret != nil && *e.Ret > 0:
				answered = true
			case e.Name == "close":
				closed = true
			}
		}
		if fd == "" || !sent || answered || !closed {
			for _, e := range rq.Events {
				t.Logf("request %d/%d %.3f %s %v %v %s", e.PID, e.TID, e.StartMS, e.Name, e.Args, e.Ret, e.Errno)
			}
			t.Fatalf("the request's events: connect to %s on fd %q, query sent %v, answer read %v, closed %v", dep, fd, sent, answered, closed)
		}
		for _, f := range rq.Files {
			if f.Path == decoy {
				t.Errorf("the background decoy %s is among the request's files", decoy)
			}
		}
		t.Logf("request: threads %v, %d events, %.1f-%.1f ms", rq.Threads, len(rq.Events), rq.StartMS, rq.EndMS)
	})
}

// listen serves every connection to a new loopback listener with serve,
// in its own goroutine, until the test ends, and returns its address.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return l.Addr().String()
}
