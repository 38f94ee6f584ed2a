//go:build linux

package node

import (
	"os"
	"syscall"
)

// killTree kills a process, its process group and every descendant with
// SIGKILL. The tree is collected before anything is signalled, since
// orphans are re-parented to their namespace's init and lost to the walk.
// It must run on an ordinary thread, whose /proc is the node's.
func killTree(root int) {
	for range 3 {
		pids := descendants(root)
		_ = syscall.Kill(-root, syscall.SIGKILL)
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if len(pids) <= 1 {
			return
		}
	}
}

// descendants returns root and every process below it, parents first.
func descendants(root int) []int {
	pids, err := allPIDs()
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, pid := range pids {
		b, err := os.ReadFile(procPath(pid, "stat"))
		if err != nil {
			continue
		}
		if st, err := parseStat(b); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
