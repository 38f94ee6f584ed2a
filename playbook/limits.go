package playbook

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps a listener's open connections. At the cap it closes
// the longest-idle keep-alive connection to make room (idle connections
// cost a client nothing to hold, so they must not starve a new alert); with
// none idle the new connection is closed at once.
type connLimiter struct {
	net.Listener
	max int

	mu       sync.Mutex
	open     int
	idle     map[net.Conn]time.Time
	rejected int64
	evicted  int64
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, idle: map[net.Conn]time.Time{}}
}

// Accept returns the next connection that fits under the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open >= l.max {
			var oldest net.Conn
			var since time.Time
			for ic, t := range l.idle {
				if oldest == nil || t.Before(since) {
					oldest, since = ic, t
				}
			}
			if oldest == nil {
				l.rejected++
				l.mu.Unlock()
				c.Close()
				continue
			}
			delete(l.idle, oldest)
			l.evicted++
			l.mu.Unlock()
			oldest.Close() // counted down by its own Close
			l.mu.Lock()
		}
		l.open++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// connState tracks which connections are idle (an http.Server ConnState
// hook).
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// counts returns the open connections and how many were rejected or
// evicted at the cap.
func (l *connLimiter) counts() (open int, rejected, evicted int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.rejected, l.evicted
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		delete(c.l.idle, c)
		c.l.mu.Unlock()
	})
	return err
}

// httpServer returns the http.Server for the API with the config's
// limits, and ln capped at MaxConnections.
func (s *Server) httpServer(ln net.Listener) (*http.Server, net.Listener) {
	lim := newConnLimiter(ln, s.cfg.MaxConnections)
	s.conns = lim
	s.metrics.addConnections(lim)
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ConnState:         lim.connState,
	}
	return hs, lim
}
