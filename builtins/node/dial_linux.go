//go:build linux

package node

import (
	"context"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsDialer connects from inside a network namespace. Each connection's
// socket is created on a thread of its own that has joined the namespace
// (the socket stays there for its life); the thread ends afterwards. Host
// names are resolved by the node's resolver, as the kubelet does for its
// probes, and the addresses are tried one after the other from the same
// thread: the standard dialer's parallel attempts would create sockets on
// other threads, in the wrong namespace.
type nsDialer struct {
	// netns is an open /proc/PID/ns/net, or -1 for the node's namespace.
	netns int
	// pid is the process netns belongs to.
	pid int

	mu    sync.Mutex
	last  string
	local string
}

// localAddress returns kdiag's end of the first connection made.
func (d *nsDialer) localAddress() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.local
}

// address returns the last address dialled.
func (d *nsDialer) address() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// DialContext connects to address ("host:port") from the namespace.
func (d *nsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var first error
	for _, ip := range ips {
		addr := net.JoinHostPort(ip.String(), port)
		d.mu.Lock()
		d.last = addr
		d.mu.Unlock()
		conn, err := d.dialOne(ctx, network, addr)
		if err == nil {
			d.mu.Lock()
			if d.local == "" {
				d.local = conn.LocalAddr().String()
			}
			d.mu.Unlock()
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func (d *nsDialer) dialOne(ctx context.Context, network, addr string) (net.Conn, error) {
	// The kubelet's probe dialer sets SO_LINGER to 0 so that probes leave
	// no TIME_WAIT sockets behind.
	nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		})
	}}
	if d.netns < 0 {
		return nd.DialContext(ctx, network, addr)
	}
	var conn net.Conn
	var err error
	onNewThread(func() {
		if err = unix.Setns(d.netns, unix.CLONE_NEWNET); err != nil {
			err = &joinError{"net", err}
			return
		}
		// A single literal address: the dialer creates the socket on this
		// goroutine, hence on this thread, and waits for the connection
		// without leaving it.
		conn, err = nd.DialContext(ctx, network, addr)
	})
	return conn, err
}

// resolve returns the addresses of host: itself when it is an IP address,
// the loopback addresses for localhost, or what the node's resolver says.
func resolve(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	if host == "localhost" {
		return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips, nil
}
