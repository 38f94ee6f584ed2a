package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// UnixSockets is unix_sockets: the unix domain sockets of a process's
// network namespace, with the process's descriptors for each. It is the
// example of CONTRIBUTING.md's "Adding a built-in": one row, its Spec, its
// types and its Linux implementation (plain /proc reads) in one file.
var UnixSockets = &Row[UnixSocketsRequest, UnixSocketsResult]{
	Builtin: "unix_sockets",
	Declare: unixSocketsSpec,
	Target:  func(r *UnixSocketsRequest) int { return r.Target.PID },
	Linux:   localUnixSockets,
}

// Bounds of unix_sockets.
const (
	// defaultMaxUnixSockets is max_sockets' default.
	defaultMaxUnixSockets = 1000
	// maxUnixSockets is the most max_sockets may be.
	maxUnixSockets = 100000
)

// UnixSocketsRequest asks for the unix domain sockets of a process's
// network namespace.
type UnixSocketsRequest struct {
	// Target is the process.
	Target Target `json:"target"`
	// MaxSockets bounds the sockets listed.
	MaxSockets int `json:"max_sockets"`
}

// UnixSocket is one unix domain socket, a line of /proc/net/unix.
type UnixSocket struct {
	// Path is the address the socket is bound to (for an accepted
	// connection, its listener's): a file path, "@name" for an abstract
	// address, "" for an unbound socket.
	Path string `json:"path"`
	// Type is stream, dgram or seqpacket.
	Type string `json:"type"`
	// State is LISTEN, CONNECTED, UNCONNECTED, CONNECTING or
	// DISCONNECTING.
	State string `json:"state"`
	// Inode is the socket's inode, as in "socket:[INODE]".
	Inode uint64 `json:"inode"`
	// FDs are the target process's descriptors for this socket.
	FDs []int `json:"fds"`
}

// UnixSocketsResult lists the unix domain sockets of a network namespace.
type UnixSocketsResult struct {
	// PID is the process whose network namespace was read.
	PID int `json:"pid"`
	// Sockets are the process's own (by lowest descriptor), then the
	// namespace's others in /proc order, at most MaxSockets.
	Sockets []UnixSocket `json:"sockets"`
	// Total is the number of sockets in the namespace.
	Total int `json:"total"`
	// Truncated reports that Sockets stopped at MaxSockets.
	Truncated bool `json:"truncated"`
}

func unixSocketsSpec(send func(context.Context, *UnixSocketsRequest) (*UnixSocketsResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "unix_sockets",
		Doc: `unix_sockets lists the unix domain sockets of a process's network namespace, like ss -xap. It
reads /proc/PID/net/unix without entering the namespace and gives each socket the
process's descriptors for it: which sockets the container listens on (a path, or
"@name" for an abstract address) and which are connected. The process's own sockets
come first; at most max_sockets are listed, total counts all.`,
		Params: append(targetParams(),
			engine.Param{Name: "max_sockets", Type: "int", Default: int64(defaultMaxUnixSockets), Doc: "list at most this many sockets"}),
		Result: `pid: the process
sockets: the process's own first, each with path ("@name" abstract, "" unbound), type (stream, dgram, seqpacket), state (LISTEN, CONNECTED, UNCONNECTED, CONNECTING, DISCONNECTING), inode, fds (the process's descriptors for it)
total: the number of unix sockets in the namespace
truncated: more sockets than max_sockets`,
		Effect:  engine.Read,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			t, err := targetArg("unix_sockets", c.Args, true)
			if err != nil {
				return nil, err
			}
			limit := c.Args.Int("max_sockets")
			if limit < 1 || limit > maxUnixSockets {
				return nil, engine.Errorf(engine.KindInvalid, "unix_sockets: max_sockets must be between 1 and %d, got %d", maxUnixSockets, limit)
			}
			return send(ctx, &UnixSocketsRequest{Target: *t, MaxSockets: int(limit)})
		},
	}
}

// localUnixSockets reads /proc/PID/net/unix, which shows the target's
// network namespace, and matches socket inodes to its descriptors. It
// keeps at most twice MaxSockets sockets in memory, however many the
// namespace has.
func localUnixSockets(ctx context.Context, req *UnixSocketsRequest) (*UnixSocketsResult, error) {
	t := &req.Target
	limit := req.MaxSockets
	if limit < 1 || limit > maxUnixSockets {
		return nil, engine.Errorf(engine.KindInvalid, "unix_sockets: max_sockets must be between 1 and %d, got %d", maxUnixSockets, limit)
	}
	if err := checkTarget("unix_sockets", t); err != nil {
		return nil, err
	}
	owners := socketFDs(t.PID)
	f, err := os.Open(procPath(t.PID, "net/unix"))
	if err != nil {
		return nil, procErr("unix_sockets", t.PID, err)
	}
	defer f.Close()
	res := &UnixSocketsResult{PID: t.PID, Sockets: []UnixSocket{}}
	var own, others []UnixSocket
	err = scanUnixTable(f, func(s UnixSocket) error {
		res.Total++
		if res.Total%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if fds := owners[s.Inode]; len(fds) > 0 {
			s.FDs = append(s.FDs, fds...)
			if len(own) < limit {
				own = append(own, s)
			}
		} else if len(others) < limit {
			others = append(others, s)
		}
		return nil
	})
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, engine.Errorf(engine.KindTimeout, "unix_sockets: timed out reading /proc/%d/net/unix", t.PID)
	case ctx.Err() != nil:
		return nil, engine.Errorf(engine.KindCancelled, "unix_sockets: cancelled while reading /proc/%d/net/unix", t.PID)
	case err != nil:
		return nil, fmt.Errorf("unix_sockets: /proc/%d/net/unix: %w", t.PID, err)
	}
	sort.SliceStable(own, func(i, j int) bool { return own[i].FDs[0] < own[j].FDs[0] })
	res.Sockets = append(res.Sockets, own...)
	res.Sockets = append(res.Sockets, others...)
	if len(res.Sockets) > limit {
		res.Sockets = res.Sockets[:limit]
	}
	res.Truncated = res.Total > len(res.Sockets)
	return res, nil
}

// unixTypes and unixStates name the kernel's socket types and states
// (SOCK_* in linux/net.h, SS_* in uapi/linux/net.h).
var (
	unixTypes  = map[string]string{"0001": "stream", "0002": "dgram", "0005": "seqpacket"}
	unixStates = map[string]string{"01": "UNCONNECTED", "02": "CONNECTING", "03": "CONNECTED", "04": "DISCONNECTING"}
)

// soAcceptCon is __SO_ACCEPTCON, the flag of a listening socket.
const soAcceptCon = 1 << 16

// scanUnixTable calls each for every socket of a /proc/net/unix table:
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/app.sock
//
// Lines that do not parse are skipped: a socket's name may hold a newline,
// which splits its line, and a workload chooses its sockets' names.
func scanUnixTable(r io.Reader, each func(UnixSocket) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		s, ok := parseUnixLine(sc.Text())
		if !ok {
			continue
		}
		if err := each(s); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return errors.New("a line is over 64 KiB")
	}
	return sc.Err()
}

// parseUnixLine parses one line of /proc/net/unix. The path is what
// follows the inode after one space, spaces included.
func parseUnixLine(line string) (UnixSocket, bool) {
	var fields [7]string
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
	}
	num, refs, proto, flagsHex, typ, st, inode := fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]
	if !strings.HasSuffix(num, ":") || len(refs) != 8 || len(proto) != 8 || len(typ) != 4 || len(st) != 2 {
		return UnixSocket{}, false
	}
	flags, err := strconv.ParseUint(flagsHex, 16, 32)
	if err != nil {
		return UnixSocket{}, false
	}
	ino, err := strconv.ParseUint(inode, 10, 64)
	if err != nil {
		return UnixSocket{}, false
	}
	s := UnixSocket{Path: strings.TrimPrefix(rest, " "), Type: unixTypes[typ], State: unixStates[st], Inode: ino, FDs: []int{}}
	if s.Type == "" {
		s.Type = "type_" + typ
	}
	switch {
	case flags&soAcceptCon != 0:
		s.State = "LISTEN"
	case s.State == "":
		s.State = "state_" + st
	}
	return s, true
}
