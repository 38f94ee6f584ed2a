//go:build linux

package node

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func init() {
	PS.Linux = localPS
}

// localPS lists the processes whose PID namespace is the target's, from the
// node's /proc.
func localPS(ctx context.Context, req *ProcRequest) (*PSResult, error) {
	t := &req.Target
	if err := checkTarget("ps", t); err != nil {
		return nil, err
	}
	ns, err := nsInode("ps", t.PID, "pid")
	if err != nil {
		return nil, err
	}
	pids, err := allPIDs()
	if err != nil {
		return nil, err
	}
	users := containerUsers(t)
	res := &PSResult{PIDNamespace: ns, Processes: []Process{}}
	for _, pid := range pids {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if other, err := os.Readlink(procPath(pid, "ns/pid")); err != nil || other != ns {
			continue
		}
		p, ok := readProcess(pid)
		if !ok {
			continue // exited meanwhile
		}
		p.User = users[p.UID]
		if p.User == "" {
			p.User = strconv.Itoa(p.UID)
		}
		res.Processes = append(res.Processes, p)
	}
	sort.Slice(res.Processes, func(i, j int) bool { return res.Processes[i].NSPID < res.Processes[j].NSPID })
	return res, nil
}

// readProcess reads one process's status and command line.
func readProcess(pid int) (Process, bool) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return Process{}, false
	}
	s := parseStatus(b)
	p := Process{PID: pid, Comm: s["Name"]}
	p.PPID, _ = strconv.Atoi(s["PPid"])
	p.Threads, _ = strconv.Atoi(s["Threads"])
	if f := strings.Fields(s["State"]); len(f) > 0 {
		p.State = f[0]
	}
	if f := strings.Fields(s["Uid"]); len(f) > 1 {
		p.UID, _ = strconv.Atoi(f[1]) // effective, as ps shows
	}
	if f := strings.Fields(s["NSpid"]); len(f) > 0 {
		p.NSPID, _ = strconv.Atoi(f[len(f)-1])
	}
	if f := strings.Fields(s["VmRSS"]); len(f) > 0 {
		p.RSSKB, _ = strconv.ParseInt(f[0], 10, 64)
	}
	cmdline, _ := os.ReadFile(procPath(pid, "cmdline"))
	p.Cmdline = strings.TrimSpace(string(bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '})))
	return p, true
}

// containerUsers reads user names from the target's /etc/passwd.
func containerUsers(t *Target) map[int]string {
	users := map[int]string{}
	root, err := openRoot("ps", t)
	if err != nil {
		return users
	}
	defer unix.Close(root)
	fd, err := openIn(root, "/etc/passwd", unix.O_RDONLY)
	if err != nil {
		return users
	}
	f := os.NewFile(uintptr(fd), "/etc/passwd")
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(fields[2]); err == nil {
			if _, seen := users[uid]; !seen {
				users[uid] = fields[0]
			}
		}
	}
	return users
}
