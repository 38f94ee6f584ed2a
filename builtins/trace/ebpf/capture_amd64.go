//go:build linux

package ebpf

import "golang.org/x/sys/unix"

// captureLegacy are the captures of the x86_64 syscalls that newer
// architectures replaced by their *at forms.
var captureLegacy = map[uint32]capture{
	unix.SYS_OPEN:     paths(0),
	unix.SYS_CREAT:    paths(0),
	unix.SYS_STAT:     paths(0),
	unix.SYS_LSTAT:    paths(0),
	unix.SYS_ACCESS:   paths(0),
	unix.SYS_READLINK: paths(0),
	unix.SYS_UNLINK:   paths(0),
	unix.SYS_RMDIR:    paths(0),
	unix.SYS_MKDIR:    paths(0),
	unix.SYS_RENAME:   paths(0, 1),
	unix.SYS_LINK:     paths(0, 1),
	unix.SYS_SYMLINK:  paths(0, 1),
	unix.SYS_CHMOD:    paths(0),
	unix.SYS_CHOWN:    paths(0),
	unix.SYS_LCHOWN:   paths(0),
}
