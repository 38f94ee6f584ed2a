//go:build linux

package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

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

func procPath(pid int, rest string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + rest
}

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

// checkProcess fails with KindGone when pid is not a live process.
func checkProcess(builtin string, pid int) error {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return engine.Errorf(engine.KindGone, "%s: process %d is gone", builtin, pid)
	}
	if err != nil {
		return procErr(builtin, pid, err)
	}
	if st, err := parseStat(b); err == nil && (st.state == "Z" || st.state == "X") {
		return engine.Errorf(engine.KindGone, "%s: process %d is gone (it exited and is a zombie)", builtin, pid)
	}
	return nil
}

// nsInode returns a namespace's identity, e.g. "net:[4026531840]".
func nsInode(builtin string, pid int, ns string) (string, error) {
	s, err := os.Readlink(procPath(pid, "ns/"+ns))
	if err != nil {
		return "", procErr(builtin, pid, err)
	}
	return s, nil
}

// procErr turns an error reading /proc/PID into a built-in error.
func procErr(builtin string, pid int, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH):
		return engine.Errorf(engine.KindGone, "%s: process %d is gone", builtin, pid)
	case errors.Is(err, fs.ErrPermission):
		return engine.Errorf(engine.KindForbidden, "%s: reading /proc/%d: permission denied (kdiag needs root on the node)", builtin, pid)
	}
	return fmt.Errorf("%s: process %d: %w", builtin, pid, err)
}

// checkTarget fails with KindGone when the target's process is gone or,
// for a handle, no longer has the namespaces the handle recorded.
func checkTarget(builtin string, t *Target) error {
	if err := checkProcess(builtin, t.PID); err != nil {
		return err
	}
	if t.Handle == nil {
		return nil
	}
	for _, n := range t.Handle.Namespaces {
		cur, err := nsInode(builtin, t.PID, n)
		if err != nil {
			return err
		}
		if err := sameNamespace(builtin, t, n, cur); err != nil {
			return err
		}
	}
	return nil
}

func sameNamespace(builtin string, t *Target, ns, cur string) error {
	if want := t.Handle.Inodes[ns]; cur != want {
		return engine.Errorf(engine.KindGone, "%s: process %d is not the one enter_ns saw: its %s namespace is %s, was %s (the process exited and its PID was reused?)", builtin, t.PID, ns, cur, want)
	}
	return nil
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
