package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// cleanupTimeout bounds all run-level cleanups together; they run on a
// fresh context because the run's own may already be cancelled.
const cleanupTimeout = 30 * time.Second

// runCleanups runs the registered cleanups in reverse order.
func (r *run) runCleanups() {
	if len(r.cleanups) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), cleanupTimeout)
	defer cancel()
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		c := r.cleanups[i]
		res := transcript.Cleanup{Name: c.name}
		if err := runCleanup(ctx, c); err != nil {
			res.Error = err.Error()
		}
		r.cleanupResults = append(r.cleanupResults, res)
	}
}

func runCleanup(ctx context.Context, c cleanup) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return c.fn(ctx)
}

type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("panic in cleanup: %v", p.v) }
