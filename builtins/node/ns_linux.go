//go:build linux

package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/kdiag/kdiag/engine"
	"golang.org/x/sys/unix"
)

// nsTypes maps namespace names to their CLONE_NEW* flags.
var nsTypes = map[string]int{
	"net":    unix.CLONE_NEWNET,
	"pid":    unix.CLONE_NEWPID,
	"uts":    unix.CLONE_NEWUTS,
	"ipc":    unix.CLONE_NEWIPC,
	"mnt":    unix.CLONE_NEWNS,
	"cgroup": unix.CLONE_NEWCGROUP,
}

// joinOrder is the order namespaces are joined in: the mount namespace
// last, since joining it changes what paths mean.
var joinOrder = []string{"ipc", "uts", "net", "cgroup", "pid", "mnt"}

func init() {
	EnterNS.Linux = localEnterNS
}

// localEnterNS checks the process and records the identity of its namespaces.
func localEnterNS(ctx context.Context, req *EnterNSRequest) (*NSHandle, error) {
	names, err := checkNamespaces("enter_ns", req.Namespaces)
	if err != nil {
		return nil, err
	}
	if err := checkProcess("enter_ns", req.PID); err != nil {
		return nil, err
	}
	h := &NSHandle{PID: req.PID, Namespaces: names, Inodes: map[string]string{}}
	for _, n := range names {
		ino, err := nsInode("enter_ns", req.PID, n)
		if err != nil {
			return nil, err
		}
		h.Inodes[n] = ino
	}
	return h, nil
}

// nsFiles are the open namespace files (and root) of a target, ready to
// be joined on a thread of its own.
type nsFiles struct {
	pid  int
	fds  map[string]int
	root int // -1 unless the mount namespace is joined
}

// openNamespaces opens the target's namespace files, checking each against
// the handle, and its root directory when the mount namespace is among
// them. Everything is opened before anything is joined: once in the
// target's mount namespace, /proc is the container's.
func openNamespaces(builtin string, t *Target, names []string) (*nsFiles, error) {
	if err := checkProcess(builtin, t.PID); err != nil {
		return nil, err
	}
	f := &nsFiles{pid: t.PID, fds: map[string]int{}, root: -1}
	for _, n := range names {
		fd, err := unix.Open(procPath(t.PID, "ns/"+n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			f.close()
			return nil, procErr(builtin, t.PID, err)
		}
		f.fds[n] = fd
		if t.Handle != nil {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				f.close()
				return nil, err
			}
			if err := sameNamespace(builtin, t, n, fmt.Sprintf("%s:[%d]", n, st.Ino)); err != nil {
				f.close()
				return nil, err
			}
		}
	}
	if _, ok := f.fds["mnt"]; ok {
		fd, err := unix.Open(procPath(t.PID, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			f.close()
			return nil, procErr(builtin, t.PID, err)
		}
		f.root = fd
	}
	return f, nil
}

func (f *nsFiles) close() {
	for _, fd := range f.fds {
		unix.Close(fd)
	}
	if f.root >= 0 {
		unix.Close(f.root)
	}
}

// join joins the namespaces on the calling thread, which must be locked
// and disposable (see onNewThread). For the mount namespace the thread
// first stops sharing its root and cwd with the others (the kernel refuses
// setns otherwise), then moves to the target's root.
func (f *nsFiles) join() error {
	for _, n := range joinOrder {
		fd, ok := f.fds[n]
		if !ok {
			continue
		}
		if n == "mnt" {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return &joinError{n, fmt.Errorf("unshare(CLONE_FS): %w", err)}
			}
		}
		if err := unix.Setns(fd, nsTypes[n]); err != nil {
			return &joinError{n, err}
		}
	}
	if f.root >= 0 {
		if err := unix.Fchdir(f.root); err != nil {
			return fmt.Errorf("fchdir to the process's root: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot to the process's root: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
	}
	return nil
}

// joinError is a failure to join a namespace, kept apart from the
// failures of what is done inside.
type joinError struct {
	ns  string
	err error
}

func (e *joinError) Error() string { return fmt.Sprintf("setns %s: %v", e.ns, e.err) }
func (e *joinError) Unwrap() error { return e.err }

// joinFailed turns a failure to join a target's namespaces into a
// built-in error: gone when the process went away meanwhile, forbidden
// without the privilege.
func joinFailed(builtin string, pid int, err error) error {
	if gone := checkProcess(builtin, pid); gone != nil {
		return gone
	}
	if errors.Is(err, unix.EPERM) {
		return engine.Errorf(engine.KindForbidden, "%s: joining the namespaces of process %d: permission denied (kdiag needs root, or CAP_SYS_ADMIN and CAP_SYS_CHROOT, on the node)", builtin, pid)
	}
	return fmt.Errorf("%s: joining the namespaces of process %d: %w", builtin, pid, err)
}
