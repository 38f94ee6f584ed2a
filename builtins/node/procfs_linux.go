//go:build linux

package node

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

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
