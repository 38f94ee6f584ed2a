// Package trace holds strace_sample: a syscall sample of a process, a
// container or a pod, taken on the node without an strace binary.
//
// A Tracer serves Requests and returns one Result shape (events, an strace
// -c style summary, the files touched, the processes traced) whatever the
// backend. Local is the tracer of this node; the node agent
// (builtins/agent) serves the same requests remotely.
//
// The ptrace backend (ptrace_linux.go) attaches with PTRACE_SEIZE and
// PTRACE_INTERRUPT from one locked OS thread, decodes each syscall with
// PTRACE_GET_SYSCALL_INFO (Linux 5.3) and the tables in syscalls*.go, and
// detaches on every path: success, error, timeout, cancellation and panic.
// The syscall number tables are generated: go generate ./builtins/trace.
package trace
