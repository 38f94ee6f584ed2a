package cri

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// criProcRoot is the proc file system scanned by the cgroup fallback;
// tests point it elsewhere.
var criProcRoot = "/proc"

// findPIDByCgroup finds a container's main process without a runtime: the
// processes whose cgroup path names the container ID, and among them the
// one whose parent is outside that set (the container's init).
func findPIDByCgroup(id string, none error) (*FindPIDResult, error) {
	if len(id) < 12 {
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: container ID %q is too short to look up in /proc/*/cgroup without a runtime (want at least 12 characters); %v", id, none)
	}
	pids := criCgroupMembers(id)
	if len(pids) == 0 {
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: no process is in a cgroup of container %q (looked in %s/*/cgroup because %v)", id, criProcRoot, none)
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	pid := pids[0]
	for _, p := range pids {
		if !in[criParentOf(p)] {
			pid = p
			break
		}
	}
	res := &FindPIDResult{
		PID:         pid,
		ContainerID: id,
		Source:      "cgroup",
		State:       "running",
		Namespaces:  map[string]string{},
	}
	for _, ns := range []string{"net", "pid", "mnt", "uts", "ipc", "cgroup", "user"} {
		res.Namespaces[ns] = "/proc/" + strconv.Itoa(pid) + "/ns/" + ns
	}
	return res, nil
}

// criCgroupMembers returns, sorted, the PIDs whose /proc/PID/cgroup has a
// path containing id.
func criCgroupMembers(id string) []int {
	ents, _ := os.ReadDir(criProcRoot)
	var pids []int
	needle := []byte(id)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(criProcRoot, e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			// hierarchy-ID:controllers:path
			if i := bytes.LastIndexByte(line, ':'); i >= 0 && bytes.Contains(line[i:], needle) {
				pids = append(pids, pid)
				break
			}
		}
	}
	sort.Ints(pids)
	return pids
}

// criParentOf returns the parent PID of pid, or 0.
func criParentOf(pid int) int {
	b, err := os.ReadFile(filepath.Join(criProcRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
