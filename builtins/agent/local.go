package agent

import (
	"net"
	"net/netip"
	"os"
	"strings"
)

// thisMachine reports whether the node named nodeName, with addresses
// hostIPs (a pod's status.hostIPs), is the machine kdiag runs on: its host
// name (or the first label of it) is the node's name, or one of the
// machine's interface addresses is one of the node's.
func thisMachine(nodeName string, hostIPs []string) bool {
	if h, err := os.Hostname(); err == nil && sameHost(h, nodeName) {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	mine := map[netip.Addr]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			mine[p.Addr().Unmap()] = true
		}
	}
	for _, s := range hostIPs {
		if ip, err := netip.ParseAddr(s); err == nil && mine[ip.Unmap()] && !ip.IsLoopback() {
			return true
		}
	}
	return false
}

// sameHost compares host names case-insensitively, a short name with
// the first label of a full one ("node-1" and "node-1.example.internal").
func sameHost(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if a == "" || b == "" {
		return false
	}
	short := func(s string) string { s, _, _ = strings.Cut(s, "."); return s }
	return a == b || a == short(b) || short(a) == b
}
