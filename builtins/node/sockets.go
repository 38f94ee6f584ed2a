package node

// Socket is one TCP or UDP socket of a network namespace.
type Socket struct {
	// Proto is tcp, tcp6, udp or udp6.
	Proto string `json:"proto"`
	// Local is the local address, "ip:port" ("[ip]:port" for IPv6).
	Local string `json:"local"`
	// LocalIP is the local IP address.
	LocalIP string `json:"local_ip"`
	// LocalPort is the local port.
	LocalPort int `json:"local_port"`
	// Remote is the remote address.
	Remote string `json:"remote"`
	// RemoteIP is the remote IP address.
	RemoteIP string `json:"remote_ip"`
	// RemotePort is the remote port.
	RemotePort int `json:"remote_port"`
	// State is LISTEN, ESTABLISHED, TIME_WAIT... (UNCONN for idle UDP).
	State string `json:"state"`
	// UID is the owner's user id.
	UID int `json:"uid"`
	// Inode is the socket's inode, as in "socket:[INODE]".
	Inode uint64 `json:"inode"`
	// FDs are the target process's descriptors for this socket.
	FDs []int `json:"fds"`
	// TxQueue is the send queue length in bytes.
	TxQueue int64 `json:"tx_queue"`
	// RxQueue is the receive queue length (for LISTEN, the accept backlog).
	RxQueue int64 `json:"rx_queue"`
}

// SocketsResult lists the sockets of a network namespace.
type SocketsResult struct {
	// PID is the process whose network namespace was read.
	PID int `json:"pid"`
	// Sockets are in /proc order: tcp, tcp6, udp, udp6.
	Sockets []Socket `json:"sockets"`
}

// Sockets is sockets: the TCP and UDP sockets of a process's network namespace.
var Sockets = procRow[SocketsResult]("sockets",
	`sockets lists the TCP and UDP sockets of a process's network namespace (like
ss -tuanp inside it), read from /proc/PID/net without entering the
namespace, with the process's descriptors that own each one.`,
	`pid: the process
sockets: each with proto (tcp, tcp6, udp, udp6), local, local_ip, local_port, remote, remote_ip, remote_port, state (LISTEN, ESTABLISHED..., UNCONN), uid, inode, fds (the process's descriptors for it), tx_queue, rx_queue`)
