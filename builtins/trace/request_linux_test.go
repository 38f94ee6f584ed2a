//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/trace/ebpf"
	"github.com/kdiag/kdiag/engine"
)

// A container for these tests: the processes of a script, in a pids
// cgroup of their own (as a container's are), started by a shell that is
// PID 1 of nothing in particular: the handler never is the traced PID.
type testContainer struct {
	pid    int
	cgroup string
}

var testContainerSeq atomic.Int64

// startContainer runs script with sh in a new pids cgroup and returns the
// shell's PID. Every process of the cgroup is SIGKILLed at the end.
func startContainer(t *testing.T, script string) *testContainer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (cgroups, ptrace)")
	}
	cg := fmt.Sprintf("/sys/fs/cgroup/pids/kdiag-trace-test-%d-%d", os.Getpid(), testContainerSeq.Add(1))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("cgroup: %v", err)
	}
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec sh -c "$2"`, "sh", cg, script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		for i := 0; i < 100; i++ {
			b, _ := os.ReadFile(cg + "/cgroup.procs")
			pids := strings.Fields(string(b))
			if len(pids) == 0 {
				break
			}
			for _, p := range pids {
				n, _ := strconv.Atoi(p)
				syscall.Kill(n, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Wait()
		os.Remove(cg)
	})
	// Wait for the shell to have moved itself into the cgroup.
	want := "pids:/" + filepath.Base(cg) + "\n"
	for i := 0; ; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
		if strings.Contains(string(b), want) {
			break
		}
		if i == 500 {
			t.Fatalf("process %d did not join %s: %s", cmd.Process.Pid, cg, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &testContainer{pid: cmd.Process.Pid, cgroup: cg}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on port.
func waitListening(t *testing.T, port int) {
	t.Helper()
	for i := 0; i < 1500; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

// flagAndDecoy makes the flag file the handler checks and the decoy
// configuration file the background loop keeps reading.
func flagAndDecoy(t *testing.T) (dir, flag, decoy string) {
	dir = t.TempDir()
	flag, decoy = filepath.Join(dir, "maintenance.flag"), filepath.Join(dir, "app.conf")
	os.WriteFile(flag, nil, 0o644)
	os.WriteFile(decoy, []byte("threads = 4\n"), 0o644)
	return dir, flag, decoy
}

// requestSample traces the container while probing url, and checks what
// holds whatever the server: the probe failed with 500, the sample ended
// early, the request was found and touched flag but not decoy, while the
// container as a whole read decoy; nothing stays traced.
func requestSample(t *testing.T, c *testContainer, url, flag, decoy, backend string) *Result {
	t.Helper()
	res, err := straceRunSpec(context.Background(), engine.Args{
		"pid": int64(c.pid), "scope": "container", "probe": url, "duration": "30s", "max_events": int64(100000), "backend": backend,
	})
	if err != nil {
		t.Fatal(err)
	}
	rq := res.Request
	if rq == nil || rq.HTTP == nil {
		t.Fatalf("no request in the result: %+v", rq)
	}
	if rq.HTTP.Status != 500 {
		t.Errorf("probe status %d (%s), want 500", rq.HTTP.Status, rq.HTTP.Error)
	}
	if res.DurationMS > 15000 {
		t.Errorf("sample lasted %d ms: it should end shortly after the answer", res.DurationMS)
	}
	if !rq.Found {
		for _, e := range res.Events {
			if strings.HasPrefix(e.Name, "accept") {
				t.Logf("%+v", e)
			}
		}
		t.Fatalf("request not found: %s", rq.Note)
	}
	if res.Scope != "container" || !strings.HasPrefix(res.ScopeBy, "cgroup pids:") || res.Backend != backend {
		t.Errorf("scope %q by %q, backend %q", res.Scope, res.ScopeBy, res.Backend)
	}
	var reqFiles, allFiles []string
	for _, f := range rq.Files {
		reqFiles = append(reqFiles, f.Path)
	}
	for _, f := range res.Files {
		allFiles = append(allFiles, f.Path)
	}
	if !straceContains(reqFiles, flag) {
		t.Errorf("request files %v lack the flag %s", reqFiles, flag)
	}
	if straceContains(reqFiles, decoy) {
		t.Errorf("request files %v include the decoy %s that only the background loop reads", reqFiles, decoy)
	}
	if !straceContains(allFiles, decoy) {
		t.Errorf("the container's files %v lack the decoy %s: the background loop was not traced", allFiles, decoy)
	}
	for _, p := range res.Processes {
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.PID)); err == nil {
			straceAssertFree(t, p.PID)
		}
	}
	if t.Failed() { // what the analysis had to go on
		for _, e := range res.Events {
			if e.StartMS > rq.StartMS-3 && e.StartMS < rq.EndMS+3 {
				t.Logf("sample %d/%d %.3f %s %v %v %s", e.PID, e.TID, e.StartMS, e.Name, e.Args, e.Ret, e.Errno)
			}
		}
		for _, e := range rq.Events {
			t.Logf("request %d/%d %.3f %s %v %v %s", e.PID, e.TID, e.StartMS, e.Name, e.Args, e.Ret, e.Errno)
		}
	}
	t.Logf("request: server %+v, threads %v, processes %v, %d events, %.1f-%.1f ms; sample %d ms, %d processes, %d events",
		rq.Server, rq.Threads, rq.Processes, len(rq.Events), rq.StartMS, rq.EndMS, res.DurationMS, len(res.Processes), res.TotalEvents)
	return res
}

// TestRequestForkingServer: busybox httpd forks a child per connection,
// which runs a CGI script that checks the flag; a shell loop in the same
// container keeps reading the decoy.
func TestRequestForkingServer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		dir, flag, decoy := flagAndDecoy(t)
		www := filepath.Join(dir, "www")
		os.MkdirAll(www+"/cgi-bin", 0o755)
		cgi := "#!/bin/sh\nif [ -e " + flag + " ]; then printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nnot ready\\n'; " +
			"else printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'; fi\n"
		if err := os.WriteFile(www+"/cgi-bin/ready", []byte(cgi), 0o755); err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		c := startContainer(t, fmt.Sprintf("busybox httpd -f -p 127.0.0.1:%d -h %s & while :; do read x < %s; done", port, www, decoy))
		waitListening(t, port)
		res := requestSample(t, c, fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/ready", port), flag, decoy, backend)
		rq := res.Request
		if len(rq.Processes) < 2 {
			t.Errorf("request processes %v: want the forked handler and the CGI script", rq.Processes)
		}
		if rq.Server.PID == c.pid {
			t.Errorf("the server is the container's first process %d; the test wants it in a child", c.pid)
		}
	})
}

// TestRequestThreadedServer: a Go net/http server, the handler in a
// goroutine on any thread, a background goroutine reading the decoy.
func TestRequestThreadedServer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		_, flag, decoy := flagAndDecoy(t)
		bin := filepath.Join(t.TempDir(), "threaded_server")
		if out, err := exec.Command("go", "build", "-o", bin, "./testdata/threaded_server").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		port := freePort(t)
		c := startContainer(t, fmt.Sprintf("%s 127.0.0.1:%d %s %s >/dev/null; sleep 1", bin, port, flag, decoy))
		waitListening(t, port)
		res := requestSample(t, c, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), flag, decoy, backend)
		if len(res.Request.Threads) == 0 {
			t.Error("no thread used the connection")
		}
	})
}

// TestRequestEventLoopServer: a single-threaded asyncio server whose loop
// also runs a timer that keeps reading the decoy.
func TestRequestEventLoopServer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		_, flag, decoy := flagAndDecoy(t)
		py := `
import asyncio, os, sys
port, flag, decoy = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, data):
        ok = not os.path.exists(flag)
        body = b"ok\n" if ok else b"not ready\n"
        self.t.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (200 if ok else 500, len(body)) + body)
        self.t.close()
loop = asyncio.new_event_loop()
def hammer():
    with open(decoy) as f: f.read()
    loop.call_later(0.002, hammer)
loop.run_until_complete(loop.create_server(P, "127.0.0.1", port))
loop.call_soon(hammer)
loop.run_forever()
`
		script := filepath.Join(t.TempDir(), "server.py")
		os.WriteFile(script, []byte(py), 0o644)
		port := freePort(t)
		c := startContainer(t, fmt.Sprintf("exec python3 %s %d %s %s", script, port, flag, decoy))
		waitListening(t, port)
		res := requestSample(t, c, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), flag, decoy, backend)
		if len(res.Request.Processes) != 0 {
			t.Errorf("an event loop creates no process per request, got %v", res.Request.Processes)
		}
	})
}

// TestContainerScopeSeesEveryProcess: scope=container traces processes
// present at the start and ones that join the cgroup during the sample
// without being forked by a traced process; each event names its process.
func TestContainerScopeSeesEveryProcess(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		_, _, decoy := flagAndDecoy(t)
		c := startContainer(t, fmt.Sprintf("while :; do read x < %s; sleep 0.05; done", decoy))
		other := filepath.Join(t.TempDir(), "late.conf")
		os.WriteFile(other, nil, 0o644)
		go func() {
			time.Sleep(500 * time.Millisecond)
			// Joins the cgroup from outside, like kubectl exec (runc exec). It
			// is not a child of this process, which would wait for it (and
			// take its ptrace stops): the first shell exits at once.
			exec.Command("sh", "-c", `sh -c 'echo $$ > "$1/cgroup.procs" && for i in 1 2 3 4 5 6 7 8 9 10; do read x < "$2"; sleep 0.1; done' sh "$1" "$2" &`,
				"sh", c.cgroup, other).Run()
		}()
		res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(c.pid), "scope": "container", "duration": "2s", "backend": backend})
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, f := range res.Files {
			files = append(files, f.Path)
		}
		if !straceContains(files, decoy) || !straceContains(files, other) {
			t.Errorf("files %v: want %s (present at the start) and %s (joined during the sample)", files, decoy, other)
		}
		pids := map[int]Process{}
		for _, p := range res.Processes {
			pids[p.PID] = p
		}
		if _, ok := pids[c.pid]; !ok {
			t.Errorf("processes %v lack the container's first process %d", res.Processes, c.pid)
		}
		for _, e := range res.Events {
			if _, ok := pids[e.PID]; !ok {
				t.Fatalf("event %+v names process %d, which is not in processes", e, e.PID)
			}
		}
		forked := 0
		for _, p := range res.Processes {
			if p.ForkedBy != 0 && p.PPID != 0 {
				forked++
			}
		}
		if forked == 0 {
			t.Errorf("no process created during the sample (each sleep is one): %+v", res.Processes)
		}
		if !res.Detached {
			t.Error("not detached")
		}
	})
}

// TestContainerScopeRefusesHostProcess: a process with neither a cgroup nor
// a PID namespace of its own is not in a container.
func TestContainerScopeRefusesHostProcess(t *testing.T) {
	cmd, _ := straceStart(t, straceTargetPath(t), "quiet")
	_, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "scope": "container", "duration": "100ms"})
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(fmt.Sprint(err), "is not in a container") {
		t.Fatalf("err = %v, want an invalid-argument error saying it is not in a container", err)
	}
	if _, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(cmd.Process.Pid), "probe": "ftp://x", "duration": "100ms"}); engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("probe ftp://x: err = %v, want invalid", err)
	}
}

// forBackends runs f once per strace_sample backend, each in a subtest.
func forBackends(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range []string{backendPtrace, backendEBPF} {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// TestUntilPath: a 20 s sample with until_path ends soon after the target
// touched a file under the directory, on both backends.
func TestUntilPath(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		target := filepath.Join(dir, "conf", "app.yaml")
		os.MkdirAll(filepath.Dir(target), 0o755)
		os.WriteFile(target, []byte("a: 1\n"), 0o644)
		c := startContainer(t, fmt.Sprintf("sleep 0.5; while :; do cat %s >/dev/null; sleep 0.05; done", target))
		res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(c.pid), "scope": "container", "duration": "20s",
			"until_path": []any{filepath.Dir(target) + "/"}, "backend": backend})
		if err != nil {
			t.Fatal(err)
		}
		if res.DurationMS > 5000 || res.Backend != backend {
			t.Errorf("sample on %s lasted %d ms: until_path did not end it", res.Backend, res.DurationMS)
		}
		var files []string
		for _, f := range res.Files {
			files = append(files, f.Path)
		}
		if !straceContains(files, target) {
			t.Errorf("files %v lack %s", files, target)
		}
	})
}

// TestContainerScopeCgroupV2: a container whose cgroup is in the unified
// hierarchy is selected in the kernel by its cgroup v2 id on eBPF: a
// process that joins the cgroup from outside is traced from its first
// call, with no rescan.
func TestContainerScopeCgroupV2(t *testing.T) {
	mnt, err := ebpf.Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(mnt, fmt.Sprintf("kdiag-trace-v2-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100; i++ {
			b, _ := os.ReadFile(cg + "/cgroup.procs")
			if len(strings.Fields(string(b))) == 0 {
				break
			}
			for _, p := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(p)
				syscall.Kill(n, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
		os.Remove(cg)
	})
	_, _, decoy := flagAndDecoy(t)
	sh := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec sh -c "while :; do read x < $2; sleep 0.05; done"`, "sh", cg, decoy)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	for i := 0; ; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(sh.Process.Pid) + "/cgroup")
		if strings.Contains(string(b), "0::/"+filepath.Base(cg)+"\n") {
			break
		}
		if i == 500 {
			t.Fatalf("process did not join %s", cg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := filepath.Join(t.TempDir(), "late.conf")
	os.WriteFile(other, nil, 0o644)
	go func() {
		time.Sleep(300 * time.Millisecond)
		exec.Command("sh", "-c", `sh -c 'echo $$ > "$1/cgroup.procs" && for i in 1 2 3 4 5; do read x < "$2"; sleep 0.05; done' sh "$1" "$2" &`,
			"sh", cg, other).Run()
	}()
	res, err := straceRunSpec(context.Background(), engine.Args{"pid": int64(sh.Process.Pid), "scope": "container", "duration": "1500ms", "backend": "ebpf"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.ScopeBy, "cgroup v2 id") {
		t.Errorf("scope by %q, want the cgroup v2 id", res.ScopeBy)
	}
	var files []string
	for _, f := range res.Files {
		files = append(files, f.Path)
	}
	if !straceContains(files, decoy) || !straceContains(files, other) {
		t.Errorf("files %v: want %s (there at the start) and %s (joined during the sample)", files, decoy, other)
	}
}
