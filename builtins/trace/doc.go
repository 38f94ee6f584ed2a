// Package trace holds strace_sample: a syscall sample of a process, a
// container or a pod, taken on the node without an strace binary.
//
// Sample, a node operation (node.Row), takes a Request and returns one
// Result shape (events, an strace -c style summary, the files touched, the
// processes traced) whatever the backend. Local traces on this node; the
// node agent (builtins/agent) serves the same requests remotely.
//
// The ptrace backend (ptrace_linux.go) attaches with PTRACE_SEIZE and
// PTRACE_INTERRUPT from one locked OS thread, decodes each syscall with
// PTRACE_GET_SYSCALL_INFO (Linux 5.3) and the tables in syscalls*.go, and
// detaches on every path: success, error, timeout, cancellation and panic.
// The syscall number tables are generated: go generate ./builtins/trace.
//
// The eBPF backend (package ebpf, adapted in ebpf_linux.go) traces the same
// requests at a cost near zero to the process: Request.Backend "auto" (the
// default) uses it when ebpf.Check passes (root or CAP_BPF and CAP_PERFMON,
// kernel BTF, the programs load), else ptrace; "ebpf" and "ptrace" force
// one. Its raw records are decoded with the same tables and recorder
// (syscallDecodeArgs reads the strings the kernel captured, through
// capturedMemory); the summary comes from the kernel's per-CPU counters,
// exact even when the ring buffer dropped records (Result.Dropped).
package trace
