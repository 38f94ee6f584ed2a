// Package ebpf traces syscalls with eBPF at a cost near zero:
// BTF-enabled raw tracepoints (tp_btf) on sys_enter and sys_exit keep the
// calls of a set of processes (host TGIDs, followed into the children they
// create during the sample, and more found by a rescan) or of a cgroup v2,
// hold each thread's call in task-local storage, count every call in
// per-CPU maps, and send each call, with the paths, execve argv and socket
// addresses it passes (and the peer address accept writes), through a
// ring buffer. A call already in progress when the programs are attached
// is recorded at its exit; calls still in progress at the end are read
// from the threads' storage through pidfds. It does not decode: the records are raw (syscall
// numbers, argument words, captured bytes); builtins/trace names and
// formats them like its ptrace backend.
//
// Check says whether eBPF can run here (privileges, BTF, the program
// loads); Sample traces for a while and unloads everything it loaded on
// every path: success, error, timeout, cancellation and panic.
//
// The kernel programs are in kdiag.c. The compiled objects and their Go
// bindings (kdiag_*_bpfel.{o,go}) are committed, so building kdiag needs
// no clang. To regenerate them after changing kdiag.c (needs clang-14 and
// llvm-14 from Debian apt):
//
//	go generate ./builtins/trace/ebpf
//
// headers/ holds the BSD-licensed libbpf helper definitions, as vendored
// by github.com/cilium/ebpf's examples; no vmlinux.h is needed, kdiag.c
// declares the few kernel fields it reads with preserve_access_index and
// the loader relocates them against the kernel's BTF (CO-RE).
package ebpf
