package node

import (
	"context"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// ProcRequest names the process a /proc-based request is about.
type ProcRequest struct {
	// Target is the process.
	Target Target `json:"target"`
}

// Process is one process of a PID namespace.
type Process struct {
	// PID is the process id in the node's PID namespace.
	PID int `json:"pid"`
	// NSPID is the process id inside the target's PID namespace.
	NSPID int `json:"nspid"`
	// PPID is the parent's process id in the node's PID namespace.
	PPID int `json:"ppid"`
	// Comm is the command name (at most 15 characters).
	Comm string `json:"comm"`
	// Cmdline is the command line, arguments joined with spaces.
	Cmdline string `json:"cmdline"`
	// State is the one-letter state: R, S, D, Z, T, t, X, I.
	State string `json:"state"`
	// UID is the effective user id.
	UID int `json:"uid"`
	// User is the user name from the container's /etc/passwd, or the id.
	User string `json:"user"`
	// Threads is the number of threads.
	Threads int `json:"threads"`
	// RSSKB is the resident set size in KiB.
	RSSKB int64 `json:"rss_kb"`
}

// PSResult lists the processes of a PID namespace.
type PSResult struct {
	// PIDNamespace is the namespace's identity, e.g. "pid:[4026532283]".
	PIDNamespace string `json:"pid_namespace"`
	// Processes are sorted by NSPID.
	Processes []Process `json:"processes"`
}

// OpenFile is one file descriptor.
type OpenFile struct {
	// FD is the descriptor number.
	FD int `json:"fd"`
	// Target is what the descriptor refers to: a path, "socket:[INODE]",
	// "pipe:[INODE]", "anon_inode:[eventpoll]"...
	Target string `json:"target"`
	// Type is file, dir, socket, pipe, anon_inode, char_device, block_device.
	Type string `json:"type"`
	// Flags are the open flags in octal, from fdinfo.
	Flags string `json:"flags"`
	// Pos is the file offset, from fdinfo.
	Pos int64 `json:"pos"`
	// Deleted reports a file that was removed while open.
	Deleted bool `json:"deleted"`
}

// OpenFilesResult lists a process's file descriptors.
type OpenFilesResult struct {
	// PID is the process.
	PID int `json:"pid"`
	// Files are sorted by FD.
	Files []OpenFile `json:"files"`
}

// EnvironResult is a process's environment.
type EnvironResult struct {
	// PID is the process.
	PID int `json:"pid"`
	// Env maps names to values, secret-looking ones "<redacted>".
	Env map[string]string `json:"env"`
	// Names are the variable names in the order of the environment.
	Names []string `json:"names"`
	// Redacted are the names whose value was redacted.
	Redacted []string `json:"redacted"`
}

func procRequest(builtin string, a engine.Args) (*ProcRequest, error) {
	t, err := targetArg(builtin, a, true)
	if err != nil {
		return nil, err
	}
	return &ProcRequest{Target: *t}, nil
}

// procRow declares a read-only built-in about one process, from its
// name, its documentation and that of its result.
func procRow[Res any](name, doc, result string) *Row[ProcRequest, Res] {
	return &Row[ProcRequest, Res]{
		Builtin: name,
		Declare: func(send func(context.Context, *ProcRequest) (*Res, error)) *engine.Spec {
			return procSpec(name, doc, result, func(ctx context.Context, r *ProcRequest) (any, error) { return send(ctx, r) })
		},
		Target: func(r *ProcRequest) int { return r.Target.PID },
	}
}

// procSpec declares a read-only built-in about one process.
func procSpec(name, doc, result string, run func(context.Context, *ProcRequest) (any, error)) *engine.Spec {
	return &engine.Spec{
		Name:    name,
		Doc:     doc,
		Params:  targetParams(),
		Result:  result,
		Effect:  engine.Read,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			req, err := procRequest(name, c.Args)
			if err != nil {
				return nil, err
			}
			return run(ctx, req)
		},
	}
}

// PS is ps: the processes of a process's PID namespace.
var PS = procRow[PSResult]("ps",
	`ps lists the processes of a process's PID namespace (the container's
processes, as ps inside it would), read from the node's /proc: each with its
PID on the node and inside the namespace.`,
	`pid_namespace: the namespace's identity, e.g. "pid:[4026532283]"
processes: sorted by nspid, each with pid (node), nspid (inside), ppid (node), comm, cmdline, state (R, S, D, Z, T...), uid, user, threads, rss_kb`)

// OpenFiles is open_files: a process's open file descriptors.
var OpenFiles = procRow[OpenFilesResult]("open_files",
	`open_files lists a process's open file descriptors (like ls -l /proc/PID/fd), with
their offsets and flags.`,
	`pid: the process
files: sorted by fd, each with fd, target (path, socket:[INODE], pipe:[INODE]...), type (file, dir, socket, pipe, anon_inode, char_device...), flags (octal), pos, deleted`)

// Environ is environ: a process's environment, secrets redacted.
var Environ = procRow[EnvironResult]("environ",
	`environ returns a process's environment (from /proc/PID/environ, as it was at
exec). Values of secret-looking names (PASSWORD, SECRET, TOKEN, KEY,
CREDENTIAL, AUTH...) and passwords inside URLs are "<redacted>".`,
	`pid: the process
env: name to value, secret-looking values "<redacted>"
names: the names in the environment's order
redacted: the names whose value was redacted`)
