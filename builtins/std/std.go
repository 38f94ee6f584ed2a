// Package std declares kdiag's standard built-ins that are not part of the
// runbook language: sleep and now. Both are recorded, so a replay neither
// sleeps nor reads the clock.
package std

import (
	"context"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// Clock is the time source of now and sleep; tests replace it.
var Clock = time.Now

// Specs returns the standard built-ins.
func Specs() []*engine.Spec {
	return []*engine.Spec{
		{
			Name:   "sleep",
			Doc:    "sleep waits for a duration (\"2s\", or seconds as a number), returning early with an error if the run is cancelled. A replay does not wait.",
			Params: []engine.Param{{Name: "duration", Type: "duration", Required: true, Doc: "how long to wait, e.g. \"5s\""}},
			Result: "slept_ms: how long it actually waited",
			Effect: engine.Read,
			Run:    sleep,
		},
		{
			Name:   "now",
			Doc:    "now returns the current time; recorded, so a replay sees the recorded time.",
			Result: "unix: seconds since the epoch (float)\nrfc3339: the time in RFC 3339, UTC",
			Effect: engine.Read,
			Run: func(ctx context.Context, c *engine.Call) (any, error) {
				t := Clock().UTC()
				return map[string]any{"unix": float64(t.UnixNano()) / 1e9, "rfc3339": t.Format(time.RFC3339Nano)}, nil
			},
		},
	}
}

func sleep(ctx context.Context, c *engine.Call) (any, error) {
	d := c.Args.Duration("duration")
	if d < 0 {
		return nil, engine.Errorf(engine.KindInvalid, "sleep: negative duration %s", d)
	}
	start := Clock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, engine.Errorf(engine.KindCancelled, "sleep: cancelled after %s", Clock().Sub(start).Round(time.Millisecond))
	}
	return map[string]any{"slept_ms": Clock().Sub(start).Milliseconds()}, nil
}
