package engine

import (
	"fmt"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
)

// heapSample is the runtime metric the watchdog reads: bytes in live and
// not yet swept heap objects.
const heapSample = "/memory/classes/heap/objects:bytes"

// watchdogEvery is how often the heap watchdog looks.
const watchdogEvery = 10 * time.Millisecond

// heapBytes returns the process's heap object bytes.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapSample}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// watchHeap cancels thread, with a message saying so, when the process's
// heap grows past max bytes, until the returned stop is called. Starlark
// cannot account its allocations per thread: the heap is the process's,
// so with several runs in one process a trip stops each of them.
func watchHeap(thread *starlark.Thread, max uint64) (stop func() bool) {
	done := make(chan struct{})
	var tripped atomic.Bool
	go func() {
		t := time.NewTicker(watchdogEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if h := heapBytes(); h > max {
					tripped.Store(true)
					thread.Cancel(fmt.Sprintf("heap watchdog: the heap reached %d MiB, over the limit of %d MiB (MaxHeapBytes, --max-heap); the runbook was stopped", h>>20, max>>20))
					return
				}
			}
		}
	}()
	return func() bool {
		close(done)
		return tripped.Load()
	}
}
