package trace

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The analysis on shapes the real-server tests do not produce on demand:
// a handler that dups the connection onto stdin/stdout before exec'ing a
// CGI program, a worker thread that only writes the answer, and a
// background thread that keeps reading a file meanwhile.
func TestAnalyseRequestDupAndWorker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	call := func(pid, tid int, name string, ms int, ret int64, raw0, raw1 uint64, paths ...string) *straceCall {
		return &straceCall{pid: pid, tid: tid, name: name, raw: [6]uint64{raw0, raw1}, args: []string{"", ""}, paths: paths,
			entry: at(ms), exit: at(ms).Add(100 * time.Microsecond), ret: ret, finished: true}
	}
	acc := call(10, 10, "accept4", 1, 5, 3, 0)
	acc.args = []string{"3", "127.0.0.1:40000"}
	calls := []*straceCall{
		call(10, 13, "openat", 0, 7, 0, 0, "/etc/app/decoy.conf"), // background thread, serving nothing
		acc,
		call(10, 12, "read", 2, 80, 5, 0), // worker 12 reads the request
		call(10, 13, "openat", 3, 7, 0, 0, "/etc/app/decoy.conf"),     // background thread
		call(10, 12, "clone", 4, 2, 0, 0),                             // worker forks the CGI (ns pid 2)
		call(20, 20, "dup2", 5, 1, 5, 1),                              // child: connection onto stdout
		call(20, 20, "execve", 6, 0, 0, 0, "/cgi/ready"),              // ...
		call(20, 20, "newfstatat", 7, 0, 0, 0, "/etc/app/maint.flag"), // the check
		call(20, 20, "write", 8, 20, 1, 0),                            // answer through fd 1
		call(10, 14, "write", 9, 10, 5, 0),                            // another worker writes a trailer
		call(10, 13, "openat", 10, 7, 0, 0, "/etc/app/decoy.conf"),    // background again, after
		call(10, 12, "close", 11, 0, 5, 0),
	}
	procs := []Process{{PID: 10}, {PID: 20, NSPID: 2, PPID: 10, ForkedBy: 12}}
	rt := analyseRequest(calls, procs, t0, "127.0.0.1:40000", false)
	if !rt.Found || rt.Server != (RequestServer{PID: 10, TID: 10, FD: 5}) {
		t.Fatalf("found %v server %+v note %q", rt.Found, rt.Server, rt.Note)
	}
	var files []string
	for _, f := range rt.Files {
		files = append(files, f.Path)
	}
	if len(files) != 2 || files[0] != "/cgi/ready" || files[1] != "/etc/app/maint.flag" {
		t.Errorf("request files %v, want the CGI and the flag, not the decoy", files)
	}
	if len(rt.Processes) != 1 || rt.Processes[0] != 20 {
		t.Errorf("request processes %v, want [20]", rt.Processes)
	}
	if rt.EndMS < 9 {
		t.Errorf("end %v ms, want at least the last write at 9 ms", rt.EndMS)
	}
	if rt2 := analyseRequest(calls, procs, t0, "127.0.0.1:1", false); rt2.Found || rt2.Note == "" {
		t.Errorf("another client's request was found: %+v", rt2)
	}
}

// A Go server moves the handler between threads after a slow call: it
// reads the request on one thread, checks the flag on a thread that never
// touches the connection, and answers from a third; the background
// goroutine runs on the same threads meanwhile.
func TestAnalyseRequestHandlerMovesThread(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	call := func(pid, tid int, name string, ms int, ret int64, raw0 uint64, paths ...string) *straceCall {
		return &straceCall{pid: pid, tid: tid, name: name, raw: [6]uint64{raw0}, args: []string{strconv.FormatUint(raw0, 10), ""}, paths: paths,
			entry: at(ms), exit: at(ms).Add(100 * time.Microsecond), ret: ret, finished: true}
	}
	acc := call(10, 11, "accept4", 1, 6, 5)
	acc.args = []string{"5", "127.0.0.1:40000"}
	calls := []*straceCall{
		call(10, 12, "openat", 0, 9, 0, "/etc/app/decoy.conf"), // the background goroutine, before the request
		acc,
		call(10, 11, "read", 2, 90, 6), // the request, on thread 11
		call(10, 11, "openat", 3, 9, 0, "/etc/app/decoy.conf"),     // 11 runs the background goroutine
		call(10, 12, "newfstatat", 4, 0, 0, "/etc/app/maint.flag"), // the handler's check, on 12
		call(10, 12, "openat", 5, 9, 0, "/etc/app/decoy.conf"),     // 12 runs the background goroutine
		call(20, 20, "openat", 5, 9, 0, "/etc/other/sidecar.conf"), // another process of the container
		call(10, 13, "write", 7, 200, 6),                           // the answer, on thread 13
		call(10, 13, "newfstatat", 8, 0, 0, "/etc/app/after.conf"), // after the answer
		call(10, 12, "openat", 9, 9, 0, "/etc/app/decoy.conf"),     // the background goroutine, after
		call(10, 12, "openat", 5, 10, 0, "/etc/app/billing.conf"),  // the handler opens its configuration...
		call(10, 14, "read", 6, 50, 10),                            // ...and reads it on yet another thread
		call(10, 14, "close", 6, 0, 10),
		call(10, 14, "read", 6, 50, 11), // not a file the request opened
	}
	rt := analyseRequest(calls, []Process{{PID: 10}, {PID: 20}}, t0, "127.0.0.1:40000", false)
	var files []string
	for _, f := range rt.Files {
		files = append(files, f.Path)
	}
	if len(files) != 2 || files[0] != "/etc/app/billing.conf" || files[1] != "/etc/app/maint.flag" {
		t.Errorf("request files %v, want the configuration and the flag, used on threads that never touched the connection", files)
	}
	var on14 []string
	for _, e := range rt.Events {
		if e.TID == 14 {
			on14 = append(on14, e.Name+" "+e.Args[0])
		}
	}
	if len(on14) != 2 || on14[0] != "read 10" && on14[1] != "read 10" {
		t.Errorf("thread 14's request events %q, want the read and close of the configuration (so that it counts as read)", on14)
	}
	if len(rt.Threads) != 2 || rt.Threads[0] != 11 || rt.Threads[1] != 13 {
		t.Errorf("threads %v, want [11 13]", rt.Threads)
	}
	// The same request served on one thread: the other threads' calls are
	// not the request's.
	for _, c := range calls { // (analyseRequest sorted calls)
		if c.name == "write" || c.name == "newfstatat" && c.paths[0] == "/etc/app/maint.flag" {
			c.tid = 11
		}
	}
	rt = analyseRequest(calls, []Process{{PID: 10}, {PID: 20}}, t0, "127.0.0.1:40000", false)
	files = files[:0]
	for _, f := range rt.Files {
		files = append(files, f.Path)
	}
	if len(files) != 1 || files[0] != "/etc/app/maint.flag" {
		t.Errorf("one-thread request files %v, want the flag, not the decoy the handler's thread also reads while serving nothing", files)
	}
}

// A descriptor number closed by another thread while accept was still in
// progress is not the connection: accept's result is the connection's only
// from its exit.
func TestAnalyseRequestDescriptorReusedDuringAccept(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	call := func(tid int, name string, ms, dur int, ret int64, raw0 uint64, paths ...string) *straceCall {
		return &straceCall{pid: 10, tid: tid, name: name, raw: [6]uint64{raw0}, args: []string{"", ""}, paths: paths,
			entry: at(ms), exit: at(ms + dur), ret: ret, finished: true}
	}
	acc := call(11, "accept4", 1, 5, 6, 5) // in progress from 1 to 6 ms, returns 6
	acc.args = []string{"5", "127.0.0.1:40000"}
	calls := []*straceCall{
		acc,
		call(12, "openat", 2, 0, 6, 0, "/etc/app/decoy.conf"), // the decoy gets 6 meanwhile...
		call(12, "read", 3, 0, 100, 6),
		call(12, "close", 4, 0, 0, 6), // ...and closes it before accept returns 6
		call(11, "read", 7, 0, 90, 6),
		call(11, "newfstatat", 8, 0, 0, 0, "/etc/app/maint.flag"),
		call(11, "write", 9, 0, 200, 6),
	}
	rt := analyseRequest(calls, []Process{{PID: 10}}, t0, "127.0.0.1:40000", false)
	if len(rt.Files) != 1 || rt.Files[0].Path != "/etc/app/maint.flag" {
		t.Errorf("request files %+v, want the flag only", rt.Files)
	}
	if len(rt.Threads) != 1 || rt.Threads[0] != 11 || rt.EndMS < 9 {
		t.Errorf("threads %v, end %v ms: want [11] answering at 9 ms", rt.Threads, rt.EndMS)
	}
}

// A handler that waits on a dependency parks (Go, an event loop): its
// thread runs the background work meanwhile, while another client (the
// kubelet's probe) keeps the server busy the whole sample. The calls made
// while the handler waited are not the request's; the dependency's are.
func TestAnalyseRequestParkedOnDependency(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	call := func(tid int, name string, ms int, ret int64, errno string, raw0 uint64, paths ...string) *straceCall {
		return &straceCall{pid: 10, tid: tid, name: name, raw: [6]uint64{raw0}, args: []string{strconv.FormatUint(raw0, 10), ""}, paths: paths,
			entry: at(ms), exit: at(ms).Add(50 * time.Microsecond), ret: ret, errno: errno, finished: true}
	}
	kubelet := call(12, "accept4", 0, 8, "", 5)
	kubelet.args = []string{"5", "10.88.0.1:50000"}
	acc := call(11, "accept4", 1, 6, "", 5)
	acc.args = []string{"5", "127.0.0.1:40000"}
	calls := []*straceCall{
		kubelet, acc,
		call(11, "read", 2, 90, "", 6),
		call(11, "connect", 3, -115, "EINPROGRESS", 9),
		call(11, "getsockopt", 4, 0, "", 9),
		call(11, "write", 5, 60, "", 9),
		call(11, "read", 6, -11, "EAGAIN", 9), // the handler parks
		call(11, "openat", 100, 12, "", 0, "/etc/app/decoy.conf"),
		call(11, "openat", 900, 12, "", 0, "/etc/app/decoy.conf"),
		call(11, "read", 901, -11, "EAGAIN", 6), // Go's background read of the client's connection
		call(11, "close", 2006, 0, "", 9),       // it gives up on the dependency
		call(11, "newfstatat", 2007, 0, "", 0, "/etc/app/fallback.flag"),
		call(11, "write", 2008, 100, "", 6),
	}
	rt := analyseRequest(calls, []Process{{PID: 10}}, t0, "127.0.0.1:40000", false)
	if len(rt.Files) != 1 || rt.Files[0].Path != "/etc/app/fallback.flag" {
		t.Errorf("request files %+v, want only the flag checked after the wait", rt.Files)
	}
	var names []string
	for _, e := range rt.Events {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "accept4 read connect getsockopt write read read close newfstatat write" {
		t.Errorf("request events %q", got)
	}
}

// A Go handler resumes on whatever thread is free: kdiag's request is read
// on thread 11, dials the dependency on 12, learns the outcome on 13 and
// sends its query on 12. The kubelet's probes of the same handler dial the
// same dependency, before, during and after kdiag's request. The request's
// events are its own dial and what was done on that socket; the kubelet's
// dial made while its request was the one last read is not.
func TestAnalyseRequestResumesOnOtherThreads(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	call := func(tid int, name string, ms int, ret int64, errno string, raw0 uint64) *straceCall {
		return &straceCall{pid: 10, tid: tid, name: name, raw: [6]uint64{raw0}, args: []string{strconv.FormatUint(raw0, 10), ""},
			entry: at(ms), exit: at(ms).Add(50 * time.Microsecond), ret: ret, errno: errno, finished: true}
	}
	accept := func(ms int, fd int64, client string) *straceCall {
		c := call(10, "accept4", ms, fd, "", 5)
		c.args = []string{"5", client}
		return c
	}
	dial := func(tid, ms int, fd uint64) *straceCall {
		c := call(tid, "connect", ms, -115, "EINPROGRESS", fd)
		c.args = []string{strconv.FormatUint(fd, 10), "10.88.0.82:9200"}
		return c
	}
	calls := []*straceCall{
		accept(0, 7, "10.88.0.1:50000"), // a kubelet probe, before
		call(14, "read", 1, 90, "", 7),
		dial(14, 2, 9),
		call(14, "close", 2003, 0, "", 9),
		call(14, "write", 2004, 100, "", 7),
		call(14, "close", 2005, 0, "", 7),
		accept(2100, 6, "127.0.0.1:40000"), // kdiag's
		call(11, "read", 2101, 90, "", 6),
		dial(12, 2102, 8),
		call(13, "getsockopt", 2103, 0, "", 8),
		call(12, "write", 2104, 60, "", 8),
		call(12, "read", 2105, -11, "EAGAIN", 8),
		accept(2500, 7, "10.88.0.1:50001"), // a kubelet probe, during
		call(14, "read", 2501, 90, "", 7),
		dial(15, 2502, 10),
		call(13, "close", 4105, 0, "", 8), // kdiag's handler gives up
		call(11, "write", 4106, 100, "", 6),
		call(11, "close", 4107, 0, "", 6),
		call(15, "close", 4503, 0, "", 10),
		call(15, "write", 4504, 100, "", 7),
	}
	rt := analyseRequest(calls, []Process{{PID: 10}}, t0, "127.0.0.1:40000", false)
	var got []string
	for _, e := range rt.Events {
		got = append(got, fmt.Sprintf("%d:%s:%s", e.TID, e.Name, e.Args[0]))
	}
	want := "10:accept4:5 11:read:6 12:connect:8 13:getsockopt:8 12:write:8 12:read:8 13:close:8 11:write:6 11:close:6"
	if strings.Join(got, " ") != want {
		t.Errorf("request events\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}
