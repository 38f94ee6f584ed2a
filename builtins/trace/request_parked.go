package trace

import "time"

// span is the time from from to to.
type span struct{ from, to time.Time }

// in reports whether t falls within one of spans.
func in(spans []span, t time.Time) bool {
	for _, s := range spans {
		if !t.Before(s.from) && t.Before(s.to) {
			return true
		}
	}
	return false
}

// parkedSpans returns the spans in which the request's handler waited on a
// dependency: from a call on a socket the request connected that said
// EAGAIN or EINPROGRESS (a non-blocking socket: the handler parks, and a Go
// or event-loop runtime runs other work on the same thread meanwhile) to
// the thread's next call on the connection or on one of those sockets.
// Only threads that both read the request and answered it are looked at;
// a call on the client's connection that says EAGAIN parks nothing (Go's
// server reads it in the background while the handler runs).
func parkedSpans(calls []*straceCall, onConn map[*straceCall]bool, threads map[int]*thread) []span {
	var out []span
	deps := map[int]map[int]bool{} // process -> sockets the request connected
	parked := map[int]time.Time{}  // thread -> since when
	for _, c := range calls {
		th := threads[c.tid]
		if th == nil || th.read.IsZero() || th.write.IsZero() || c.entry.Before(th.read) || c.entry.After(th.write) {
			continue
		}
		fd := -1
		if c.raw[0] < 1<<31 {
			fd = int(c.raw[0])
		}
		mine := onConn[c] || fd >= 0 && deps[c.pid][fd]
		if since, ok := parked[c.tid]; ok {
			if !mine {
				continue // other work while the handler waits
			}
			out = append(out, span{since, c.entry})
			delete(parked, c.tid)
		}
		switch {
		case c.name == "connect" && fd >= 0:
			if deps[c.pid] == nil {
				deps[c.pid] = map[int]bool{}
			}
			deps[c.pid][fd] = true
			mine = true
		case c.name == "close" && fd >= 0 && deps[c.pid][fd]:
			delete(deps[c.pid], fd)
			continue
		}
		if mine && !onConn[c] && (c.errno == "EAGAIN" || c.errno == "EINPROGRESS") {
			parked[c.tid] = c.exit
		}
	}
	for tid, since := range parked {
		out = append(out, span{since, threads[tid].write})
	}
	return out
}

// latestServed returns a test of whether kdiag's request (accepted by a)
// is, at a call's entry, the one its process most recently began to serve
// of the connections it holds then: the last of them whose first request
// bytes it read. A call of a thread that did not touch the request's
// connection is the request's by time alone only then; while the process
// serves several connections, the most recently read is the one whose
// handler is most likely running.
func latestServed(calls []*straceCall, a *straceCall) func(c *straceCall) bool {
	type conn struct{ pid, fd int }
	type life struct {
		read, closed time.Time
		ours         bool
	}
	open := map[conn]*life{}
	var lives = map[int][]*life{} // process -> its connections
	for _, c := range calls {     // in entry order
		switch {
		case (c.name == "accept" || c.name == "accept4") && c.finished && c.ret >= 0:
			l := &life{ours: c == a}
			open[conn{c.pid, int(c.ret)}] = l
			lives[c.pid] = append(lives[c.pid], l)
		case c.raw[0] >= 1<<31:
		case requestReadCalls[c.name] && c.finished && c.ret > 0:
			if l := open[conn{c.pid, int(c.raw[0])}]; l != nil && l.read.IsZero() {
				l.read = c.entry
			}
		case c.name == "close":
			k := conn{c.pid, int(c.raw[0])}
			if l := open[k]; l != nil {
				l.closed = c.entry
				delete(open, k)
			}
		}
	}
	return func(c *straceCall) bool {
		var last *life
		for _, l := range lives[c.pid] {
			if l.read.IsZero() || l.read.After(c.entry) || !l.closed.IsZero() && l.closed.Before(c.entry) {
				continue
			}
			if last == nil || l.read.After(last.read) {
				last = l
			}
		}
		return last != nil && last.ours
	}
}
