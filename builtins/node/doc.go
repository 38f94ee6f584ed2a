// Package node declares kdiag's node built-ins: looking at and into a
// container's process from the node it runs on, the way nsenter, curl, ls,
// ps and ss would, without depending on those binaries.
//
//	enter_ns      a handle on a process's namespaces, checked at every use
//	run           a command inside the namespaces (like nsenter -t PID -n -p -u -m)
//	http_probe    an HTTP request from inside the network namespace, with kubelet semantics
//	tcp_probe     a TCP connect from inside the network namespace
//	read_file     a file as the container sees it (symbolic links resolve inside its root)
//	list_dir      a directory as the container sees it
//	stat          a file's metadata as the container sees it
//	ps            the processes of the target's PID namespace
//	open_files    a process's open file descriptors
//	sockets       the TCP and UDP sockets of the target's network namespace
//	unix_sockets  the unix domain sockets of the target's network namespace
//	mounts        the target's mount table
//	environ       a process's environment, secret-looking values redacted
//
// strace_sample, a syscall sample of a process, lives in package
// builtins/trace.
//
// Results always carry every field (empty strings, zeros, empty lists), so
// that a runbook can write r.error or r.signal without checking first.
//
// Each built-in is a Row of the table Ops returns: its name, its Spec, its
// request and result types (plain JSON-serialisable structs) and its Linux
// implementation. The Specs talk to an Executor: Local executes requests
// on this machine; the node agent (package builtins/agent) serves the
// same requests remotely, so that running kdiag off-node is a transport,
// not a rewrite. Everything but the Spec and the implementation is
// derived from the row, and on a system other than Linux every built-in
// refuses with the same error.
//
// # Namespaces without nsenter
//
// setns(2) changes one OS thread. Joining the network, UTS or IPC
// namespace happens on a goroutine locked to a fresh thread that is never
// unlocked, so the runtime ends the thread with the goroutine. A socket
// created on that thread stays in the target's network namespace, which is
// how http_probe and tcp_probe connect from inside. Joining a mount
// namespace is refused (EINVAL) to a thread that shares its file-system
// information (root, cwd) with other threads, which every Go thread does;
// the same thread first unshares it (unshare(CLONE_FS)), as moby's
// internal/unshare does. Joining a PID namespace only affects children. So
// run joins every namespace on its own thread, chroots to the target's root
// there, and forks the command from that thread: no helper process, no cgo,
// no re-execution of kdiag. The process's startup thread is never used for
// this, since the runtime parks rather than ends it.
//
// Reading a container's files needs no namespace at all: openat2(2) with
// RESOLVE_IN_ROOT below /proc/PID/root resolves paths and symbolic links as
// if that directory were the root.
package node
