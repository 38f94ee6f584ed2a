//go:build linux

package node

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onNewThread runs fn on a goroutine locked to an OS thread and returns
// when fn has. The goroutine never unlocks, so the runtime ends the thread
// after fn: whatever fn changed on it (namespaces, root, cwd) dies with it.
//
// The process's startup thread is special: the runtime parks it instead of
// ending it, and the kernel shows its state in /proc/self. If the goroutine
// lands there, it keeps the thread for itself while fn runs on another
// goroutine, which therefore cannot be scheduled on the startup thread.
func onNewThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			fn()
			return // still locked: the thread ends here
		}
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			runtime.LockOSThread()
			fn()
		}()
		<-inner
		runtime.UnlockOSThread() // the startup thread itself was not changed
	}()
	<-done
}
