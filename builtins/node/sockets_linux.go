//go:build linux

package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// tcpStates names the kernel's TCP states (include/net/tcp_states.h).
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
	"09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}

func init() {
	Sockets.Linux = localSockets
}

// localSockets parses the target's /proc/PID/net/{tcp,tcp6,udp,udp6}, which
// show its network namespace, and matches socket inodes to its fds.
func localSockets(ctx context.Context, req *ProcRequest) (*SocketsResult, error) {
	t := &req.Target
	if err := checkTarget("sockets", t); err != nil {
		return nil, err
	}
	owners := socketFDs(t.PID)
	res := &SocketsResult{PID: t.PID, Sockets: []Socket{}}
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(procPath(t.PID, "net/"+proto))
		if os.IsNotExist(err) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, procErr("sockets", t.PID, err)
		}
		socks, err := parseNetTable(proto, string(b))
		if err != nil {
			return nil, fmt.Errorf("sockets: /proc/%d/net/%s: %w", t.PID, proto, err)
		}
		for i := range socks {
			socks[i].FDs = append([]int{}, owners[socks[i].Inode]...)
		}
		res.Sockets = append(res.Sockets, socks...)
	}
	return res, nil
}

// parseNetTable parses one /proc/net/{tcp,udp}[6] table:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func parseNetTable(proto, s string) ([]Socket, error) {
	var out []Socket
	lines := strings.Split(s, "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		lip, lport, err := parseHexAddr(f[1])
		if err != nil {
			return nil, err
		}
		rip, rport, err := parseHexAddr(f[2])
		if err != nil {
			return nil, err
		}
		sk := Socket{
			Proto: proto, LocalIP: lip.String(), LocalPort: lport, RemoteIP: rip.String(), RemotePort: rport,
			Local: net.JoinHostPort(lip.String(), strconv.Itoa(lport)), Remote: net.JoinHostPort(rip.String(), strconv.Itoa(rport)),
			State: tcpStates[f[3]],
		}
		if strings.HasPrefix(proto, "udp") {
			sk.State = map[string]string{"01": "ESTABLISHED", "07": "UNCONN"}[f[3]]
		}
		if sk.State == "" {
			sk.State = f[3]
		}
		if tx, rx, ok := strings.Cut(f[4], ":"); ok {
			sk.TxQueue, _ = strconv.ParseInt(tx, 16, 64)
			sk.RxQueue, _ = strconv.ParseInt(rx, 16, 64)
		}
		sk.UID, _ = strconv.Atoi(f[7])
		sk.Inode, _ = strconv.ParseUint(f[9], 10, 64)
		out = append(out, sk)
	}
	return out, nil
}

// parseHexAddr parses "0100007F:0BB8" (IPv4) or 32 hex digits (IPv6),
// each 32-bit word in the kernel's (little-endian) byte order.
func parseHexAddr(s string) (net.IP, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("malformed address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("malformed port in %q", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, fmt.Errorf("malformed address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), int(port), nil
}
