//go:build linux

package nodetest

import (
	"os/exec"
	"runtime"
	"sync"
)

// The targets are started with Pdeathsig so that they die with the test
// binary. Linux sends that signal when the thread that forked the child
// exits, not the process, and the Go runtime ends the threads of goroutines
// that exit while locked (as the node built-ins' namespace threads do). So
// every target is forked from one goroutine locked to its thread for the
// life of the process.

var (
	pinOnce sync.Once
	pinReq  chan pinJob
)

type pinJob struct {
	cmd  *exec.Cmd
	errc chan error
}

func startPinned(cmd *exec.Cmd) error {
	pinOnce.Do(func() {
		pinReq = make(chan pinJob)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for j := range pinReq {
				j.errc <- j.cmd.Start()
			}
		}()
	})
	j := pinJob{cmd: cmd, errc: make(chan error)}
	pinReq <- j
	return <-j.errc
}
