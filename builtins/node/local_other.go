//go:build !linux

package node

import (
	"context"
	"runtime"

	"github.com/kdiag/kdiag/engine"
)

func notLinux(builtin string) error {
	return engine.Errorf(engine.KindInvalid, "%s: node built-ins need Linux (this is %s); run kdiag on the node", builtin, runtime.GOOS)
}

// EnterNS fails: node built-ins need Linux.
func (Local) EnterNS(context.Context, *EnterNSRequest) (*NSHandle, error) {
	return nil, notLinux("enter_ns")
}

// Run fails: node built-ins need Linux.
func (Local) Run(context.Context, *RunRequest) (*RunResult, error) { return nil, notLinux("run") }

// HTTPProbe fails: node built-ins need Linux.
func (Local) HTTPProbe(context.Context, *HTTPProbeRequest) (*HTTPProbeResult, error) {
	return nil, notLinux("http_probe")
}

// TCPProbe fails: node built-ins need Linux.
func (Local) TCPProbe(context.Context, *TCPProbeRequest) (*TCPProbeResult, error) {
	return nil, notLinux("tcp_probe")
}

// ReadFile fails: node built-ins need Linux.
func (Local) ReadFile(context.Context, *FileRequest) (*ReadFileResult, error) {
	return nil, notLinux("read_file")
}

// ListDir fails: node built-ins need Linux.
func (Local) ListDir(context.Context, *FileRequest) (*ListDirResult, error) {
	return nil, notLinux("list_dir")
}

// Stat fails: node built-ins need Linux.
func (Local) Stat(context.Context, *FileRequest) (*StatResult, error) { return nil, notLinux("stat") }

// PS fails: node built-ins need Linux.
func (Local) PS(context.Context, *ProcRequest) (*PSResult, error) { return nil, notLinux("ps") }

// OpenFiles fails: node built-ins need Linux.
func (Local) OpenFiles(context.Context, *ProcRequest) (*OpenFilesResult, error) {
	return nil, notLinux("open_files")
}

// Sockets fails: node built-ins need Linux.
func (Local) Sockets(context.Context, *ProcRequest) (*SocketsResult, error) {
	return nil, notLinux("sockets")
}

// Mounts fails: node built-ins need Linux.
func (Local) Mounts(context.Context, *ProcRequest) (*MountsResult, error) {
	return nil, notLinux("mounts")
}

// Environ fails: node built-ins need Linux.
func (Local) Environ(context.Context, *ProcRequest) (*EnvironResult, error) {
	return nil, notLinux("environ")
}
