//go:build linux

package node_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

// TestUnixSocketsOfATarget lists the sockets of a real process in fresh
// network and mount namespaces: a listener on a path of its own tmpfs, an
// abstract listener and a connected pair, each with the descriptor the
// process holds it at; none of them is in the node's namespace.
func TestUnixSocketsOfATarget(t *testing.T) {
	tg, h := start(t, nodetest.Options{UnixSockets: true})
	r := must[*node.UnixSocketsResult](t, "unix_sockets", engine.Args{"ns": h})
	if r.PID != tg.PID || r.Truncated || r.Total != len(r.Sockets) {
		t.Fatalf("pid %d, total %d, truncated %v, %d sockets", r.PID, r.Total, r.Truncated, len(r.Sockets))
	}
	byFD := map[int]node.UnixSocket{}
	for _, s := range r.Sockets {
		if len(s.FDs) != 1 || s.Inode == 0 {
			t.Errorf("a socket of the target's fresh namespace not held once by the target: %+v", s)
			continue
		}
		byFD[s.FDs[0]] = s
	}
	want := map[int]node.UnixSocket{
		nodetest.UnixPathFD:     {Path: nodetest.UnixPath, Type: "stream", State: "LISTEN"},
		nodetest.UnixAbstractFD: {Path: nodetest.UnixAbstract, Type: "stream", State: "LISTEN"},
		nodetest.UnixPairFDs[0]: {Path: "", Type: "stream", State: "CONNECTED"},
		nodetest.UnixPairFDs[1]: {Path: "", Type: "stream", State: "CONNECTED"},
	}
	for fd, w := range want {
		g, ok := byFD[fd]
		if !ok || g.Path != w.Path || g.Type != w.Type || g.State != w.State {
			t.Errorf("fd %d: got %+v, want %+v", fd, g, w)
			continue
		}
		if link := readlink(t, filepath.Join("/proc", strconv.Itoa(tg.PID), "fd", strconv.Itoa(fd))); link != "socket:["+strconv.FormatUint(g.Inode, 10)+"]" {
			t.Errorf("fd %d is %s, the result says inode %d", fd, link, g.Inode)
		}
	}
	// The sockets are listed in fd order, the process's own first.
	for i := 1; i < len(r.Sockets); i++ {
		if r.Sockets[i-1].FDs[0] > r.Sockets[i].FDs[0] {
			t.Errorf("sockets not in descriptor order: %+v", r.Sockets)
		}
	}

	// The node's namespace does not have them; max_sockets bounds the list.
	own := must[*node.UnixSocketsResult](t, "unix_sockets", engine.Args{"pid": int64(os.Getpid()), "max_sockets": int64(100000)})
	for _, s := range own.Sockets {
		if s.Path == nodetest.UnixAbstract {
			t.Errorf("the target's abstract socket is in the node's namespace: %+v", s)
		}
	}
	one := must[*node.UnixSocketsResult](t, "unix_sockets", engine.Args{"ns": h, "max_sockets": int64(1)})
	if len(one.Sockets) != 1 || !one.Truncated || one.Total != r.Total || one.Sockets[0].FDs[0] != r.Sockets[0].FDs[0] {
		t.Errorf("max_sockets=1: %+v", one)
	}
}

// TestUnixSocketsOwnFirst: in the node's busy namespace, a listener of
// this process, named with spaces, comes first with its descriptor, even
// when max_sockets cuts the list to one.
func TestUnixSocketsOwnFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a name with spaces.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := must[*node.UnixSocketsResult](t, "unix_sockets", engine.Args{"pid": int64(os.Getpid()), "max_sockets": int64(1)})
	if len(r.Sockets) != 1 || r.Sockets[0].Path != path || r.Sockets[0].State != "LISTEN" || len(r.Sockets[0].FDs) == 0 {
		t.Fatalf("own listener not first: %+v", r)
	}
	if r.Truncated != (r.Total > 1) {
		t.Errorf("total %d, truncated %v", r.Total, r.Truncated)
	}
	all := must[*node.UnixSocketsResult](t, "unix_sockets", engine.Args{"pid": int64(os.Getpid()), "max_sockets": int64(100000)})
	if all.Truncated || len(all.Sockets) != all.Total || !slices.ContainsFunc(all.Sockets, func(s node.UnixSocket) bool { return len(s.FDs) == 0 }) {
		t.Errorf("the node's namespace: total %d, %d listed, truncated %v; want others' sockets too (no fds)", all.Total, len(all.Sockets), all.Truncated)
	}
}

// TestUnixSocketsErrors: bad arguments and a gone process.
func TestUnixSocketsErrors(t *testing.T) {
	_, err := call(t, "unix_sockets", engine.Args{"pid": int64(os.Getpid()), "max_sockets": int64(0)})
	wantErr(t, err, engine.KindInvalid, "unix_sockets: max_sockets must be between 1 and 100000, got 0")
	_, err = call(t, "unix_sockets", engine.Args{})
	wantErr(t, err, engine.KindInvalid, "unix_sockets:")
	_, err = node.UnixSockets.Local(context.Background(), &node.UnixSocketsRequest{Target: node.Target{PID: 1 << 30}, MaxSockets: 10})
	wantErr(t, err, engine.KindGone, "unix_sockets: process 1073741824 is gone")
}
