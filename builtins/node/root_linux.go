//go:build linux

package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/engine"
	"golang.org/x/sys/unix"
)

// openRoot opens a target's root directory (/proc/PID/root) as the anchor
// of path resolution.
func openRoot(builtin string, t *Target) (int, error) {
	if err := checkTarget(builtin, t); err != nil {
		return -1, err
	}
	fd, err := unix.Open(procPath(t.PID, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, procErr(builtin, t.PID, err)
	}
	return fd, nil
}

// openIn opens path below root as if root were "/": ".." stops at it and
// symbolic links, absolute ones included, resolve inside it. Magic links
// (/proc/*/root, /proc/*/fd/*) are refused, so nothing leads out.
func openIn(root int, path string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 10 {
		fd, err := unix.Openat2(root, path, how)
		if err != unix.EAGAIN { // EAGAIN: a concurrent rename; try again
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// fileErr turns an error resolving path into a built-in error.
func fileErr(builtin string, req *FileRequest, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return engine.Errorf(engine.KindNotFound, "%s: %s: no such file or directory in the root of process %d", builtin, req.Path, req.Target.PID)
	case errors.Is(err, unix.ENOTDIR):
		return engine.Errorf(engine.KindNotFound, "%s: %s: a component of the path is not a directory in the root of process %d", builtin, req.Path, req.Target.PID)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return engine.Errorf(engine.KindForbidden, "%s: %s: permission denied", builtin, req.Path)
	case errors.Is(err, unix.ELOOP):
		return engine.Errorf(engine.KindInvalid, "%s: %s: too many levels of symbolic links (or a link through /proc)", builtin, req.Path)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s: openat2 is not available (Linux 5.6 or later is needed): %w", builtin, err)
	}
	return fmt.Errorf("%s: %s: %w", builtin, req.Path, err)
}

// missing reports an error that missing_ok turns into exists=false.
func missing(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// fileInfo describes a stat result.
func fileInfo(name string, st *unix.Stat_t) FileInfo {
	return FileInfo{
		Name:  name,
		Type:  fileType(st.Mode),
		Size:  st.Size,
		Mode:  fmt.Sprintf("%04o", st.Mode&0o7777),
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC().Format(time.RFC3339),
		UID:   int(st.Uid),
		GID:   int(st.Gid),
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char_device"
	case unix.S_IFBLK:
		return "block_device"
	}
	return "unknown"
}

// readlinkAt reads a symbolic link; name "" reads the link fd itself
// refers to (opened with O_PATH|O_NOFOLLOW).
func readlinkAt(dirfd int, name string) string {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
