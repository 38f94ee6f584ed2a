package trace

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"sort"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
)

// RequestTrace is what serving one request sent by kdiag did, told apart
// from everything else the traced processes did meanwhile.
type RequestTrace struct {
	// URL is the probe's URL.
	URL string `json:"url"`
	// HTTP is the answer to an http(s) probe, nil for tcp://.
	HTTP *node.HTTPProbeResult `json:"http"`
	// TCP is the outcome of a tcp:// probe, nil for http(s).
	TCP *node.TCPProbeResult `json:"tcp"`
	// Client is kdiag's end of the connection, ip:port, as the server
	// sees its peer.
	Client string `json:"client"`
	// Found reports that the server's accept of kdiag's connection was
	// seen; Note says why not otherwise.
	Found bool `json:"found"`
	// Server is the process and thread that accepted the connection, and
	// the connection's file descriptor there.
	Server RequestServer `json:"server"`
	// StartMS and EndMS bound the request: from the accept to the last
	// write on the connection (or the last call of a process created for
	// it; when the server never answered, the sample's last call),
	// relative to the start of the sample.
	StartMS float64 `json:"start_ms"`
	EndMS   float64 `json:"end_ms"`
	// Unanswered reports that the server wrote nothing on the connection
	// before the sample ended: the request was still being served (or
	// had been given up) when kdiag's probe gave up waiting.
	Unanswered bool `json:"unanswered,omitempty"`
	// Threads are the threads that used the connection.
	Threads []int `json:"threads"`
	// Processes are the processes created to serve the request (a forked
	// handler, a CGI script), host PIDs.
	Processes []int `json:"processes"`
	// Events are the syscalls that served the request, in entry order, at
	// most requestMaxEvents.
	Events []Event `json:"events"`
	// EventsTruncated reports that more events served it.
	EventsTruncated bool `json:"events_truncated"`
	// Files are the paths those syscalls touched.
	Files []File `json:"files"`
	// Note explains a request that could not be followed, or why what
	// was followed may be incomplete (eBPF records dropped).
	Note string `json:"note"`
}

// RequestServer names the accepting side of kdiag's connection.
type RequestServer struct {
	PID int `json:"pid"`
	TID int `json:"tid"`
	FD  int `json:"fd"`
}

const (
	// requestMaxCalls bounds the calls kept for the analysis of a request.
	requestMaxCalls = 200000
	// requestMaxEvents bounds the events a RequestTrace lists.
	requestMaxEvents = 2000
)

// requestFDCalls are the syscalls whose first argument is a file
// descriptor that a connection's handler uses.
var requestFDCalls = map[string]bool{
	"read": true, "readv": true, "pread64": true, "recvfrom": true, "recvmsg": true, "recvmmsg": true,
	"write": true, "writev": true, "pwrite64": true, "sendto": true, "sendmsg": true, "sendmmsg": true,
	"sendfile": true, "splice": true, "close": true, "shutdown": true, "getpeername": true,
	"getsockname": true, "setsockopt": true, "getsockopt": true, "fcntl": true, "ioctl": true, "fstat": true,
}

// requestWriteCalls are those that answer on the connection.
var requestWriteCalls = map[string]bool{
	"write": true, "writev": true, "pwrite64": true, "sendto": true, "sendmsg": true, "sendmmsg": true, "sendfile": true,
}

// requestReadCalls are those that receive the request.
var requestReadCalls = map[string]bool{
	"read": true, "readv": true, "pread64": true, "recvfrom": true, "recvmsg": true, "recvmmsg": true,
}

// thread is what one thread did on the connection: its first successful
// read of it and its last write on it.
type thread struct {
	pid         int
	read, write time.Time
}

// analyseRequest finds, among all the calls of a sample, those that served
// the connection whose client end is client:
//
//   - the accept, and every call on the connection's descriptors (dups
//     included) in the process that accepted it;
//   - in each thread that both read the request and wrote the response,
//     the calls from its first successful read to its last write: the work
//     done between receiving and answering;
//   - in a process where the request moved between threads (one thread
//     read it and another answered, or a thread other than the one that
//     accepted it carried it, as Go's runtime does after a slow call, or
//     a thread pool hands work over), the calls of any of its threads
//     from the first read to the answer (or, unanswered, to the sample's
//     end), when they name a file or address;
//   - of the calls found by time alone (the two above), those naming only
//     files or addresses the process also touches while serving no
//     connection are left out: a runtime that parks the handler (a
//     goroutine waiting on a dependency) runs its background work on the
//     same threads meanwhile, and a background loop's file is not the
//     request's; a call on another thread than the request's is kept
//     only while kdiag's request is the one the process most recently
//     began to serve (read) of those in flight, and only if it names
//     something the process touches nowhere else but inside the request,
//     or is a dial of an address the process dials only while serving
//     (the kubelet's probes of the same handler dial the same
//     dependency, and that they do does not make kdiag's dial someone
//     else's; a background pinger's dials happen while it serves nothing);
//   - every call, on any thread, on a descriptor one of the request's
//     calls opened or connected, until it is closed (a file counts as
//     read, not only checked; a non-blocking connect's outcome is its
//     getsockopt): a Go handler parked
//     on a dependency resumes on whichever thread is free, so its query
//     and the connect's outcome may be on threads that never touched the
//     request's connection;
//   - every call of the processes created by a process holding the
//     connection, or by one created for it (a forked handler, a CGI
//     script), and of their descendants.
//
// Reads that return EAGAIN open nothing: an event loop or the Go runtime
// goes off to other work after them.
func analyseRequest(calls []*straceCall, procs []Process, start time.Time, client string, callsTruncated bool) *RequestTrace {
	rt := &RequestTrace{Client: client, Threads: []int{}, Processes: []int{}, Events: []Event{}, Files: []File{}}
	peer, err := netip.ParseAddrPort(client)
	if err != nil {
		rt.Note = fmt.Sprintf("no connection was made (%s), so no request was served", orNone(client))
		return rt
	}
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].entry.Before(calls[j].entry) })
	acc := -1
	for i, c := range calls {
		if (c.name == "accept" || c.name == "accept4") && c.finished && c.ret >= 0 && len(c.args) > 1 && samePeer(c.args[1], peer) {
			acc = i
			break
		}
	}
	if acc < 0 {
		rt.Note = fmt.Sprintf("the server's accept of kdiag's connection from %s was not seen among %d calls "+
			"(is the server in the traced scope? a server in another container needs scope=pod or its own pid)", client, len(calls))
		if callsTruncated {
			rt.Note += fmt.Sprintf("; only the first %d calls were kept", requestMaxCalls)
		}
		return rt
	}
	a := calls[acc]
	rt.Found = true
	rt.Server = RequestServer{PID: a.pid, TID: a.tid, FD: int(a.ret)}
	// fds holds, per process, the connection's descriptors and when each
	// became one (a call entered before then used an older file of that
	// number: a descriptor closed while accept was in progress).
	fds := map[int]map[int]time.Time{a.pid: {int(a.ret): a.exit}}
	children := map[int]map[int]Process{} // forking thread -> PID in its namespace -> process
	for _, p := range procs {
		if p.ForkedBy != 0 {
			if children[p.ForkedBy] == nil {
				children[p.ForkedBy] = map[int]Process{}
			}
			children[p.ForkedBy][p.NSPID] = p
		}
	}
	served := map[int]bool{} // processes created for the request
	onConn := map[*straceCall]bool{a: true}
	threads := map[int]*thread{}
	var firstRead time.Time
	end := a.exit
	answered := false
	for _, c := range calls[acc+1:] {
		held := fds[c.pid]
		switch {
		case served[c.pid]:
			end = later(end, c.exit)
		case len(held) == 0 || c.raw[0] > 1<<31 || !holds(held, int(c.raw[0]), c.entry) || !requestFDCalls[c.name] && !isDup(c.name):
		default:
			onConn[c] = true
			th := threads[c.tid]
			if th == nil {
				th = &thread{pid: c.pid}
				threads[c.tid] = th
			}
			switch {
			case requestReadCalls[c.name] && c.finished && c.ret > 0 && th.read.IsZero():
				th.read = c.entry
				if firstRead.IsZero() {
					firstRead = c.entry
				}
			case requestWriteCalls[c.name] && c.finished && c.ret >= 0:
				th.write = c.exit
				end = later(end, c.exit)
				answered = true
			case c.name == "close":
				delete(held, int(c.raw[0]))
			case isDup(c.name) && c.finished && c.ret >= 0:
				held[dupTarget(c)] = c.exit
			}
		}
		if isFork(c.name) && c.finished && c.ret > 0 {
			// A process forked by one that serves the request, or that
			// holds the connection, serves it (and inherits the descriptors).
			if child, ok := children[c.tid][int(c.ret)]; ok && (served[c.pid] || len(held) > 0) {
				served[child.PID] = true
				fds[child.PID] = copySet(held)
			}
		}
	}
	if !answered {
		// Whatever the server did until the sample ended may be the
		// request's: what it waits for is the question.
		rt.Unanswered = true
		for _, c := range calls[acc:] {
			end = later(end, c.entry)
		}
	}
	moved := map[int]bool{} // processes whose request moved between threads
	for tid, th := range threads {
		rt.Threads = append(rt.Threads, tid)
		// A thread that only read or only wrote, or a thread other than
		// the one that accepted the connection (a Go runtime's, a worker
		// pool's), means another thread may carry the request meanwhile.
		if th.read.IsZero() != th.write.IsZero() || tid != a.tid {
			moved[th.pid] = true
		}
	}
	if firstRead.IsZero() {
		firstRead = a.exit
	}
	sort.Ints(rt.Threads)
	for pid := range served {
		rt.Processes = append(rt.Processes, pid)
	}
	sort.Ints(rt.Processes)
	files := map[string]*File{}
	parked := parkedSpans(calls[acc:], onConn, threads)
	background := backgroundTargets(calls)
	latest := latestServed(calls, a)
	var outside map[int]map[string]bool // what the process touched while the request was not being worked on
	opened := map[int]map[int]bool{}    // files the request's calls opened, to follow their reads
	for _, c := range calls[acc:] {
		th := threads[c.tid]
		// On the connection, in a process created for the request, or on
		// a descriptor the request opened or connected, whichever thread
		// made the call (a parked goroutine resumes on any thread).
		direct := onConn[c] || served[c.pid] || onOpened(opened, c, firstRead, end)
		// Between a thread's read of the request and its answer; or, the
		// request having moved between threads, in any thread of its
		// process meanwhile. A runtime that parks the handler (a Go
		// goroutine waiting on a dependency) runs other work on the same
		// threads then, so a call naming only what the process also
		// touches when serving nothing is that work, not the request's.
		inThread := th != nil && !th.read.IsZero() && !th.write.IsZero() && !c.entry.Before(th.read) && !c.entry.After(th.write) &&
			!in(parked, c.entry)
		inProcess := moved[c.pid] && !c.entry.Before(firstRead) && !c.entry.After(end) && !in(parked, c.entry)
		if !direct {
			ts := targets(c)
			if inProcess && !inThread && outside == nil {
				outside = targetsOutside(calls, a.entry, end, parked)
			}
			switch {
			case !inThread && !inProcess:
				continue
			case len(ts) > 0 && inThread && !anyInside(ts, background[c.pid]):
				continue
			case !inThread && !latest(c):
				continue // another request the process began since is likelier
			case len(ts) > 0 && !inThread && !anyInside(ts, outside[c.pid]) && !(c.name == "connect" && anyInside(ts, background[c.pid])):
				continue
			case len(ts) == 0 && !inThread && !(c.raw[0] < 1<<31 && opened[c.pid][int(c.raw[0])]):
				continue
			}
		}
		trackOpened(opened, c)
		if len(rt.Events) < requestMaxEvents {
			rt.Events = append(rt.Events, eventOf(c, start))
		} else {
			rt.EventsTruncated = true
		}
		for _, p := range c.paths {
			if direct || inThread && !background[c.pid][p] || !inThread && !outside[c.pid][p] {
				addFile(files, p, c)
			}
		}
	}
	rt.StartMS, rt.EndMS = relMS(a.entry, start), relMS(end, start)
	for _, f := range files {
		rt.Files = append(rt.Files, *f)
	}
	sort.Slice(rt.Files, func(i, j int) bool { return rt.Files[i].Path < rt.Files[j].Path })
	return rt
}

// targets returns what a call names: its paths, or the address a connect
// dials (a dependency the request may have tried).
func targets(c *straceCall) []string {
	if c.name == "connect" && len(c.args) > 1 {
		return []string{"connect " + c.args[1]}
	}
	return c.paths
}

// backgroundTargets returns, for each process, the targets of its calls
// made while it served no connection: outside every span from an accept
// to the close of the connection it returned (or the sample's end). Those
// are its background work (a loop re-reading a file, a pinger); a file
// only touched while serving requests (kdiag's and the kubelet's probes)
// is not among them.
func backgroundTargets(calls []*straceCall) map[int]map[string]bool {
	type conn struct{ pid, fd int }
	serving := map[conn]time.Time{} // connection -> when accept returned it
	busy := map[int]int{}           // process -> connections it holds
	out := map[int]map[string]bool{}
	for _, c := range calls { // in entry order
		if (c.name == "accept" || c.name == "accept4") && c.finished && c.ret >= 0 {
			k := conn{c.pid, int(c.ret)}
			if _, ok := serving[k]; !ok {
				serving[k] = c.exit
				busy[c.pid]++
			}
			continue
		}
		if c.name == "close" && c.raw[0] < 1<<31 {
			// (a close entered before accept returned that number closed
			// an older file)
			k := conn{c.pid, int(c.raw[0])}
			if from, ok := serving[k]; ok && !c.entry.Before(from) {
				delete(serving, k)
				busy[c.pid]--
				continue
			}
		}
		ts := targets(c)
		if len(ts) == 0 || busy[c.pid] > 0 {
			continue
		}
		addTargets(out, c.pid, ts)
	}
	return out
}

// addTargets notes targets ts under process pid in out.
func addTargets(out map[int]map[string]bool, pid int, ts []string) {
	if out[pid] == nil {
		out[pid] = map[string]bool{}
	}
	for _, t := range ts {
		out[pid][t] = true
	}
}

// targetsOutside returns, for each process, the targets of its calls
// before from, after to, or while the request was parked.
func targetsOutside(calls []*straceCall, from, to time.Time, parked []span) map[int]map[string]bool {
	out := map[int]map[string]bool{}
	for _, c := range calls {
		ts := targets(c)
		if len(ts) == 0 || !c.entry.Before(from) && !c.entry.After(to) && !in(parked, c.entry) {
			continue
		}
		addTargets(out, c.pid, ts)
	}
	return out
}

// trackOpened notes the descriptor an open call of the request returned
// (or a connect of it dialled), and forgets it when it is closed, so that a
// read of it on another thread is the request's too (a file counts as read,
// not checked; a non-blocking connect's outcome is its getsockopt).
func trackOpened(opened map[int]map[int]bool, c *straceCall) {
	switch {
	case (c.name == "open" || c.name == "openat" || c.name == "openat2" || c.name == "creat") && c.finished && c.ret >= 0:
		if opened[c.pid] == nil {
			opened[c.pid] = map[int]bool{}
		}
		opened[c.pid][int(c.ret)] = true
	case c.name == "connect" && c.raw[0] < 1<<31:
		if opened[c.pid] == nil {
			opened[c.pid] = map[int]bool{}
		}
		opened[c.pid][int(c.raw[0])] = true
	case c.name == "close" && c.raw[0] < 1<<31 && opened[c.pid] != nil:
		delete(opened[c.pid], int(c.raw[0]))
	}
}

// onOpened reports whether c, entered between from and to, is a call on a
// descriptor the request opened or connected (and has not closed).
func onOpened(opened map[int]map[int]bool, c *straceCall, from, to time.Time) bool {
	return c.raw[0] < 1<<31 && opened[c.pid][int(c.raw[0])] && (requestFDCalls[c.name] || c.name == "connect") &&
		!c.entry.Before(from) && !c.entry.After(to)
}

// anyInside reports whether some target is not in outside.
func anyInside(targets []string, outside map[string]bool) bool {
	for _, t := range targets {
		if !outside[t] {
			return true
		}
	}
	return false
}

func isFork(name string) bool {
	return name == "fork" || name == "vfork" || name == "clone" || name == "clone3"
}

// samePeer reports whether a decoded sockaddr is peer (IPv4-mapped
// addresses compare equal to IPv4 ones).
func samePeer(s string, peer netip.AddrPort) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Port() == peer.Port() && ap.Addr().Unmap() == peer.Addr().Unmap()
}

func isDup(name string) bool {
	return name == "dup" || name == "dup2" || name == "dup3"
}

// dupTarget returns the new descriptor of a dup call.
func dupTarget(c *straceCall) int {
	if c.name == "dup" {
		return int(c.ret)
	}
	return int(c.raw[1])
}

// holds reports whether fd was the connection's when a call entered at t.
func holds(held map[int]time.Time, fd int, t time.Time) bool {
	from, ok := held[fd]
	return ok && !t.Before(from)
}

func copySet(m map[int]time.Time) map[int]time.Time {
	out := make(map[int]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func relMS(t, start time.Time) float64 {
	return math.Round(float64(t.Sub(start).Nanoseconds())/1e3) / 1e3
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// eventOf renders a finished or unfinished call as an Event.
func eventOf(c *straceCall, start time.Time) Event {
	ev := Event{PID: c.pid, TID: c.tid, Name: c.name, Args: c.args, Errno: c.errno, StartMS: relMS(c.entry, start)}
	if ev.Args == nil {
		ev.Args = []string{}
	}
	if c.finished {
		v := c.ret
		ev.Ret = &v
		ev.DurUS = c.exit.Sub(c.entry).Microseconds()
	}
	return ev
}

// addFile counts one call on path in files.
func addFile(files map[string]*File, path string, c *straceCall) {
	f := files[path]
	if f == nil {
		f = &File{Path: path}
		files[path] = f
	}
	f.Calls++
	f.Syscalls = straceAddDistinct(f.Syscalls, c.name)
	f.Results = straceAddDistinct(f.Results, resultWord(c))
}

// resultWord is a call's outcome as File.Results lists it.
func resultWord(c *straceCall) string {
	switch {
	case !c.finished:
		return "?"
	case c.errno != "":
		return c.errno
	case c.ret == 0:
		return "0"
	}
	return "ok"
}

// checkProbe validates a probe request.
func checkProbe(p *Probe) error {
	if _, _, err := probeTarget(p.URL); err != nil {
		return err
	}
	if p.TimeoutMS <= 0 {
		return errInvalid("strace_sample: probe_timeout must be positive, got %dms", p.TimeoutMS)
	}
	if p.GraceMS < 0 {
		return errInvalid("strace_sample: grace must not be negative, got %dms", p.GraceMS)
	}
	return nil
}

// probeTarget splits a probe URL: "http" for http(s) URLs, "tcp" and
// host:port for tcp://host:port.
func probeTarget(raw string) (kind, hostport string, err error) {
	u, perr := url.Parse(raw)
	switch {
	case perr != nil || u.Host == "":
	case u.Scheme == "http" || u.Scheme == "https":
		return "http", u.Host, nil
	case u.Scheme == "tcp" && u.Port() != "" && (u.Path == "" || u.Path == "/"):
		return "tcp", u.Host, nil
	}
	return "", "", errInvalid("strace_sample: probe %q is not an http://, https:// or tcp://host:port URL", raw)
}

func errInvalid(format string, args ...any) error {
	return engine.Errorf(engine.KindInvalid, format, args...)
}
