//go:build linux && (amd64 || arm64)

package trace

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kdiag/kdiag/builtins/trace/ebpf"
	"github.com/kdiag/kdiag/engine"
)

// scope finds the processes of a container or a pod on this node, from
// /proc alone (no cgroup file system needed, so it works in an agent pod
// with the host's PID namespace): by cgroup when the target has one of its
// own, else by PID namespace.
type scope struct {
	name string
	// by says how members are recognised, for the result.
	by string
	// hier and prefix: a process is a member when its cgroup path in
	// hierarchy hier is prefix or below it.
	hier, prefix string
	// pidns: a process is a member when its PID namespace is this one.
	pidns string
	self  int
}

// newScope returns the scope of name around pid; nil for ScopeProcess.
func newScope(name string, pid int) (*scope, error) {
	switch name {
	case "", ScopeProcess:
		return nil, nil
	case ScopeContainer, ScopePod:
	default:
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: scope %q: want process, container or pod", name)
	}
	sc := &scope{name: name, self: os.Getpid()}
	hier, cg, err := cgroupOf(pid)
	if err != nil {
		return nil, engine.Errorf(engine.KindGone, "strace_sample: process %d is gone", pid)
	}
	_, own, _ := cgroupOf(sc.self)
	if cg != "/" && cg != "" && cg != own {
		if name == ScopePod {
			parent := path.Dir(cg)
			if !strings.Contains(path.Base(parent), "pod") {
				return nil, engine.Errorf(engine.KindInvalid,
					"strace_sample: scope pod: the cgroup of process %d (%s) is not below a pod's cgroup (its parent %s does not name a pod); use scope=container", pid, cg, parent)
			}
			cg = parent
		}
		sc.hier, sc.prefix = hier, cg
		sc.by = fmt.Sprintf("cgroup %s:%s", hier, cg)
		return sc, nil
	}
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return nil, engine.Errorf(engine.KindGone, "strace_sample: process %d is gone", pid)
	}
	ownNS, _ := os.Readlink("/proc/self/ns/pid")
	if name == ScopePod || ns == ownNS {
		return nil, engine.Errorf(engine.KindInvalid,
			"strace_sample: scope %s: process %d shares kdiag's cgroup %s and has no PID namespace of its own; it is not in a container (use scope=process)", name, pid, orRoot(cg))
	}
	sc.pidns = ns
	sc.by = "pid namespace " + ns
	return sc, nil
}

func orRoot(cg string) string {
	if cg == "" {
		return "/"
	}
	return cg
}

// members lists the host PIDs of the scope's processes now.
func (sc *scope) members() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sc.self {
			continue
		}
		if sc.has(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// has reports whether pid is in the scope.
func (sc *scope) has(pid int) bool {
	if sc.pidns != "" {
		ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
		return err == nil && ns == sc.pidns
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		h, p, ok := cgroupLine(line)
		if ok && h == sc.hier {
			return p == sc.prefix || strings.HasPrefix(p, sc.prefix+"/")
		}
	}
	return false
}

// cgroupOf returns the hierarchy and path that identify pid's cgroup: the
// unified hierarchy's when it is in use, else the pids controller's (or
// the first controller's).
func cgroupOf(pid int) (hier, cg string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", "", err
	}
	var firstH, firstP string
	for _, line := range strings.Split(string(b), "\n") {
		h, p, ok := cgroupLine(line)
		if !ok {
			continue
		}
		switch {
		case h == "0" && p != "/":
			return h, p, nil
		case h == "pids":
			hier, cg = h, p
		case firstH == "" && h != "0":
			firstH, firstP = h, p
		}
	}
	if hier == "" {
		hier, cg = firstH, firstP
	}
	return hier, cg, nil
}

// cgroupLine parses "ID:controllers:path" into a hierarchy key (the
// controllers, or "0" for the unified hierarchy) and the path.
func cgroupLine(line string) (hier, p string, ok bool) {
	id, rest, ok1 := strings.Cut(line, ":")
	ctrl, p, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return "", "", false
	}
	if id == "0" && ctrl == "" {
		return "0", p, true
	}
	return ctrl, p, true
}

// cgroup2ID returns the cgroup v2 id that selects the scope in the kernel,
// when its members are recognised by a cgroup of the unified hierarchy
// (not on a cgroup v1 or hybrid host whose containers' cgroups are v1).
func (sc *scope) cgroup2ID() (uint64, bool) {
	if sc.hier != "0" || sc.prefix == "" || sc.prefix == "/" {
		return 0, false
	}
	mnt, err := ebpf.Cgroup2Mount()
	if err != nil {
		return 0, false
	}
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(mnt, filepath.Clean("/"+sc.prefix)), &st) != nil {
		return 0, false
	}
	return st.Ino, true
}
