package trace

import (
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
