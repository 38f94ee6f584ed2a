//go:build linux && (amd64 || arm64)

package ebpf

import "golang.org/x/sys/unix"

// capture says which arguments of a syscall the kernel reads at its
// entry; it mirrors struct capture in kdiag.c.
type capture struct {
	paths  []int // NUL-terminated strings (paths, names)
	argv   int   // an argv array, -1: none
	mem    int   // a struct, -1: none
	memLen int   // the argument giving its length, -1: memFix
	memFix int
	out    int // a struct the call writes (accept's peer address), -1: none
	outLen int // the argument pointing to its socklen_t length
}

func paths(p ...int) capture { return capture{paths: p, argv: -1, mem: -1, memLen: -1, out: -1} }

// peer captures, after the call, what it wrote at argument out (a socket
// address, an option's value) and its length at outLen.
func peer(out, outLen int) capture {
	return capture{argv: -1, mem: -1, memLen: -1, out: out, outLen: outLen}
}

// captureCommon are the captures of the syscalls of every architecture:
// the file syscalls' paths (and the names of symlink, xattr, mount and
// memfd_create), execve argv, socket addresses and openat2's open_how.
var captureCommon = map[uint32]capture{
	unix.SYS_OPENAT:            paths(1),
	unix.SYS_OPENAT2:           {paths: []int{1}, argv: -1, mem: 2, memLen: -1, memFix: 24, out: -1},
	unix.SYS_NEWFSTATAT:        paths(1),
	unix.SYS_STATX:             paths(1),
	unix.SYS_STATFS:            paths(0),
	unix.SYS_FACCESSAT:         paths(1),
	unix.SYS_FACCESSAT2:        paths(1),
	unix.SYS_READLINKAT:        paths(1),
	unix.SYS_EXECVE:            {paths: []int{0}, argv: 1, mem: -1, memLen: -1, out: -1},
	unix.SYS_EXECVEAT:          {paths: []int{1}, argv: 2, mem: -1, memLen: -1, out: -1},
	unix.SYS_UNLINKAT:          paths(1),
	unix.SYS_CHDIR:             paths(0),
	unix.SYS_CHROOT:            paths(0),
	unix.SYS_MKDIRAT:           paths(1),
	unix.SYS_RENAMEAT:          paths(1, 3),
	unix.SYS_RENAMEAT2:         paths(1, 3),
	unix.SYS_LINKAT:            paths(1, 3),
	unix.SYS_SYMLINKAT:         paths(0, 2),
	unix.SYS_FCHMODAT:          paths(1),
	unix.SYS_FCHOWNAT:          paths(1),
	unix.SYS_UTIMENSAT:         paths(1),
	unix.SYS_TRUNCATE:          paths(0),
	unix.SYS_INOTIFY_ADD_WATCH: paths(1),
	unix.SYS_GETXATTR:          paths(0, 1),
	unix.SYS_LGETXATTR:         paths(0, 1),
	unix.SYS_FGETXATTR:         paths(1),
	unix.SYS_MOUNT:             paths(0, 1, 2),
	unix.SYS_UMOUNT2:           paths(0),
	unix.SYS_MEMFD_CREATE:      paths(0),
	unix.SYS_CONNECT:           {argv: -1, mem: 1, memLen: 2, out: -1},
	unix.SYS_BIND:              {argv: -1, mem: 1, memLen: 2, out: -1},
	unix.SYS_SENDTO:            {argv: -1, mem: 4, memLen: 5, out: -1},
	unix.SYS_ACCEPT:            peer(1, 2),
	unix.SYS_ACCEPT4:           peer(1, 2),
	unix.SYS_GETPEERNAME:       peer(1, 2),
	unix.SYS_GETSOCKNAME:       peer(1, 2),
	unix.SYS_RECVFROM:          peer(4, 5),
	unix.SYS_GETSOCKOPT:        peer(3, 4), // the value read (SO_ERROR: a connect's outcome)
}

// captureTable returns the captures of this architecture.
func captureTable() map[uint32]capture {
	m := make(map[uint32]capture, len(captureCommon)+len(captureLegacy))
	for nr, c := range captureCommon {
		m[nr] = c
	}
	for nr, c := range captureLegacy {
		m[nr] = c
	}
	return m
}

// kernel returns c as kdiag.c's struct capture.
func (c capture) kernel() kdiagCapture {
	k := kdiagCapture{}
	for _, p := range c.paths {
		k.PathMask |= 1 << p
	}
	if c.argv >= 0 {
		k.ArgvArg = uint8(c.argv) + 1
	}
	if c.mem >= 0 {
		k.MemArg = uint8(c.mem) + 1
		k.MemLen = uint8(c.memFix)
		if c.memLen >= 0 {
			k.MemLenArg = uint8(c.memLen) + 1
		}
	}
	if c.out >= 0 {
		k.OutArg, k.OutLenArg = uint8(c.out)+1, uint8(c.outLen)+1
	}
	return k
}
