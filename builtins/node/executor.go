package node

import "context"

// Executor serves the node built-ins' requests. Local serves them on this
// node; a remote node agent can implement the same interface by sending
// the JSON form of each request and decoding the result. Expected failures
// are returned as *engine.Error (kind and message, also JSON), anything
// else is an infrastructure failure.
type Executor interface {
	// EnterNS checks a process and returns a handle on its namespaces.
	EnterNS(ctx context.Context, req *EnterNSRequest) (*NSHandle, error)
	// Run runs a command inside a target's namespaces.
	Run(ctx context.Context, req *RunRequest) (*RunResult, error)
	// HTTPProbe sends an HTTP request from a target's network namespace.
	HTTPProbe(ctx context.Context, req *HTTPProbeRequest) (*HTTPProbeResult, error)
	// TCPProbe opens a TCP connection from a target's network namespace.
	TCPProbe(ctx context.Context, req *TCPProbeRequest) (*TCPProbeResult, error)
	// ReadFile reads a file below a target's root.
	ReadFile(ctx context.Context, req *FileRequest) (*ReadFileResult, error)
	// ListDir lists a directory below a target's root.
	ListDir(ctx context.Context, req *FileRequest) (*ListDirResult, error)
	// Stat describes a file below a target's root.
	Stat(ctx context.Context, req *FileRequest) (*StatResult, error)
	// PS lists the processes of a target's PID namespace.
	PS(ctx context.Context, req *ProcRequest) (*PSResult, error)
	// OpenFiles lists a process's file descriptors.
	OpenFiles(ctx context.Context, req *ProcRequest) (*OpenFilesResult, error)
	// Sockets lists the TCP and UDP sockets of a target's network namespace.
	Sockets(ctx context.Context, req *ProcRequest) (*SocketsResult, error)
	// Mounts lists a target's mounts.
	Mounts(ctx context.Context, req *ProcRequest) (*MountsResult, error)
	// Environ returns a process's environment, secrets redacted.
	Environ(ctx context.Context, req *ProcRequest) (*EnvironResult, error)
}

// Local is the Executor of this node. It needs Linux, and root (or
// CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_SYS_CHROOT) for most requests.
type Local struct{}

var _ Executor = Local{}
