//go:build linux && (amd64 || arm64)

package ebpf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Cgroup2Mount returns where the cgroup v2 (unified) hierarchy is mounted,
// e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified on a hybrid host, or an
// error when it is not.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("ebpf: reading mounts: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options - fstype source ...
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, typ := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(typ) > 0 && typ[0] == "cgroup2" {
			return fields[4], nil
		}
	}
	return "", fmt.Errorf("ebpf: no cgroup v2 hierarchy is mounted (cgroup v1 only): trace by process instead")
}

// CgroupOf returns the cgroup v2 id of process pid (the inode of its
// directory in the unified hierarchy), for Options.CgroupID.
func CgroupOf(pid int) (uint64, error) {
	mnt, err := Cgroup2Mount()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return 0, fmt.Errorf("ebpf: process %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return cgroupID(filepath.Join(mnt, filepath.Clean("/"+p)))
		}
	}
	return 0, fmt.Errorf("ebpf: process %d is in no cgroup v2", pid)
}

// cgroupID is the id of the cgroup v2 directory dir.
func cgroupID(dir string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("ebpf: cgroup %s: %v", dir, err)
	}
	return st.Ino, nil
}
