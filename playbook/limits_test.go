package playbook_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
)

// serverConns counts the established TCP connections whose local end is
// the server at url (from /proc/net/tcp): the server's side only, not the
// clients' sockets in this same process.
func serverConns(t *testing.T, url string) int {
	t.Helper()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	port, _ := strconv.Atoi(portStr)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "01" { // ESTABLISHED
			continue
		}
		if i := strings.LastIndex(f[1], ":"); i >= 0 {
			if p, err := strconv.ParseUint(f[1][i+1:], 16, 32); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSlowUnauthenticatedBodies has 40 clients announce 1 MB bodies to an
// HMAC-only server and trickle one byte a second: at most
// max_unauthenticated_bodies are read at once (the rest get 503 at once),
// each read is cut at body_timeout with 408, and a signed alert sent in
// the middle of the attack is accepted.
func TestSlowUnauthenticatedBodies(t *testing.T) {
	const secret = "hmac-key"
	t.Setenv("KDIAG_TEST_HMAC", secret)
	settings := "auth:\n  hmac_secret_env: KDIAG_TEST_HMAC\nbody_timeout: 500ms\nmax_unauthenticated_bodies: 4\n"
	s, _ := start(t, config(t, t.TempDir(), settings, podRoute(t, "")))
	s.Token = ""
	fds := openFDs(t)
	const n = 40
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				codes <- -1
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
			done := make(chan int, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			for {
				select {
				case code := <-done:
					codes <- code
					return
				case <-time.After(time.Second):
					if _, err := c.Write([]byte(" ")); err != nil {
						codes <- <-done
						return
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	body, _ := json.Marshal(podAlerts("web-0"))
	start := time.Now()
	code, b := s.Post(t, body, map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte(secret), body)})
	// With HMAC only, a genuine sender's body is unauthenticated too: it
	// competes for the same slots and may be told 503 (Alertmanager
	// retries); it must never hang.
	if code != http.StatusOK && code != http.StatusServiceUnavailable {
		t.Errorf("signed alert during the attack: %d %s", code, b)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("signed alert during the attack took %s", time.Since(start))
	}
	t.Logf("signed alert during the attack: %d in %s", code, time.Since(start).Round(time.Millisecond))
	waitCh := make(chan struct{})
	go func() { wg.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(15 * time.Second):
		t.Fatalf("slow bodies still held after 15s (body_timeout 500ms)")
	}
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	t.Logf("answers to %d slow bodies: %v", n, count)
	if count[http.StatusRequestTimeout] == 0 || count[http.StatusRequestTimeout] > 4+1 || count[http.StatusServiceUnavailable] < n-5 {
		t.Errorf("answers %v: want at most 4 bodies read (408) and the rest refused at once (503)", count)
	}
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, "the server's connections to close", 5*time.Second, func() bool { return serverConns(t, s.URL) == 0 })
	waitFor(t, fmt.Sprintf("open fds to return to %d", fds), 5*time.Second, func() bool { return openFDs(t) <= fds+1 })
	// The signed alert is accepted once the attack is over.
	code, b = s.Post(t, body, map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte(secret), body)})
	if code != http.StatusOK {
		t.Errorf("signed alert after the attack: %d %s", code, b)
	}
}

// TestIdleConnectionsCapped opens 300 keep-alive connections that each
// make one request and then sit idle, against max_connections 50: the
// server never holds more than 50, an alert on a new connection is still
// answered, and idle_timeout closes the rest.
func TestIdleConnectionsCapped(t *testing.T) {
	s, _ := start(t, config(t, t.TempDir(), "max_connections: 50\nidle_timeout: 2s\n", podRoute(t, "")))
	fds := openFDs(t)
	var conns []net.Conn
	peak := 0
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if i%25 == 0 {
			peak = max(peak, serverConns(t, s.URL))
		}
	}
	peak = max(peak, serverConns(t, s.URL))
	t.Logf("server-side connections peaked at %d with 300 idle clients", peak)
	if peak > 50 {
		t.Errorf("the server holds %d connections, over max_connections 50", peak)
	}
	start := time.Now()
	res := s.Alerts(t, podAlerts("web-0"), http.StatusOK)
	if res[0].Outcome != playbook.OutcomeStarted {
		t.Errorf("alert while the cap is full: %+v", res)
	}
	t.Logf("alert answered in %s with the cap full of idle connections", time.Since(start).Round(time.Millisecond))
	if ev := metric(t, s, `kdiag_connections_refused_total{how="evicted_idle"}`); ev == "0" {
		t.Errorf("no idle connection was evicted at the cap")
	}
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, "idle_timeout to close the idle connections", 10*time.Second, func() bool { return serverConns(t, s.URL) == 0 })
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "fds to return", 5*time.Second, func() bool { return openFDs(t) <= fds+3 })
}

// TestNotifyAfterSlotReleased runs two alerts through one slot with a
// notify receiver that takes 1.5s: the second run starts before the first
// run's notification is answered.
func TestNotifyAfterSlotReleased(t *testing.T) {
	answered := make(chan time.Time, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		answered <- time.Now()
	}))
	defer recv.Close()
	settings := "concurrency: 1\nnotify:\n  url: " + recv.URL + "/hook\n  timeout: 5s\n"
	s, _ := start(t, config(t, t.TempDir(), settings, slowRoute(t, "10ms")))
	res := s.Alerts(t, podAlerts("a", "b"), http.StatusOK)
	first := <-answered
	m := s.Wait(t, res[1].Run, 10*time.Second)
	if !m.Started.Before(first) {
		t.Errorf("the second run started at %s, after the first's notification was answered at %s: the slow notification held the slot", m.Started, first)
	}
}

// TestReadEndpointsNeedAuth: the run list, pages, reports and
// transcripts answer 401 without a token, and are served with the read
// token or the alert token; stored files are 0600 in 0700 directories.
func TestReadEndpointsNeedAuth(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "read"), []byte("reader-token\n"), 0o600)
	s, _ := start(t, config(t, dir, "auth:\n  token_file: token\n  read_token_file: read\n", podRoute(t, "")))
	id := s.Alerts(t, podAlerts("web-0"), http.StatusOK)[0].Run
	s.Wait(t, id, 10*time.Second)
	paths := []string{"/", "/runs", "/runs/" + id, "/runs/" + id + "?format=json", "/runs/" + id + "?format=text", "/runs/" + id + "/transcript"}
	for _, tok := range []string{"", "wrong", "reader-token", testToken} {
		c := *s
		c.Token, c.ReadToken = "", tok
		for _, p := range paths {
			code, _, b := (&c).Get(t, p, "")
			want := http.StatusOK
			if tok == "" || tok == "wrong" {
				want = http.StatusUnauthorized
			}
			if code != want {
				t.Errorf("GET %s with token %q: %d, want %d", p, tok, code, want)
			}
			if want == http.StatusUnauthorized && strings.Contains(string(b), "web-0") {
				t.Errorf("GET %s without auth leaks the run: %s", p, b)
			}
		}
	}
	if code, _, _ := s.Get(t, "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	runDir := s.Store().Dir(id)
	for _, p := range []string{filepath.Dir(runDir), runDir} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700 (%v)", p, st.Mode().Perm(), err)
		}
	}
	ents, _ := os.ReadDir(runDir)
	for _, e := range ents {
		st, _ := os.Stat(filepath.Join(runDir, e.Name()))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), st.Mode().Perm())
		}
	}
	if len(ents) < 4 {
		t.Errorf("run dir holds %d files, want run.json, the transcript and reports", len(ents))
	}
}
