package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kdiag/kdiag/engine"
)

// The /proc readers of this file are plain file reads that build on every
// system, so that a built-in whose Linux implementation needs no more is
// one portable file (unix_sockets.go); they are called on Linux only.

// procStat is the part of /proc/PID/stat the built-ins use.
type procStat struct {
	pid   int
	comm  string
	state string
	ppid  int
	pgrp  int
}

// parseStat parses /proc/PID/stat; comm may hold spaces and parentheses,
// so the fields after it are found from the last ')'.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return st, fmt.Errorf("malformed stat %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return st, fmt.Errorf("malformed stat %q", b)
	}
	rest := strings.Fields(string(b[end+1:]))
	if len(rest) < 3 {
		return st, fmt.Errorf("malformed stat %q", b)
	}
	st.pid, st.comm, st.state = pid, string(b[open+1:end]), rest[0]
	st.ppid, _ = strconv.Atoi(rest[1])
	st.pgrp, _ = strconv.Atoi(rest[2])
	return st, nil
}

// parseStatus parses /proc/PID/status into its "Key:\tvalue" fields.
func parseStatus(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// allPIDs lists the numeric entries of the node's /proc.
func allPIDs() ([]int, error) {
	names, err := readDirNames("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func procPath(pid int, rest string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + rest
}

// checkProcess fails with KindGone when pid is not a live process.
func checkProcess(builtin string, pid int) error {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
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
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ESRCH):
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

// listFDs returns a process's descriptor numbers, sorted.
func listFDs(pid int) ([]int, error) {
	names, err := readDirNames(procPath(pid, "fd"))
	if err != nil {
		return nil, err
	}
	fds := make([]int, 0, len(names))
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil {
			fds = append(fds, fd)
		}
	}
	sort.Ints(fds)
	return fds, nil
}

// socketFDs maps socket inodes to the process's descriptors for them.
func socketFDs(pid int) map[uint64][]int {
	out := map[uint64][]int{}
	fds, _ := listFDs(pid)
	for _, fd := range fds {
		link, err := os.Readlink(procPath(pid, "fd/"+strconv.Itoa(fd)))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out[ino] = append(out[ino], fd)
			}
		}
	}
	return out
}
