//go:build linux && (amd64 || arm64)

package trace

import (
	"context"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
)

// sampleRequest traces while it sends the probe from the target's network
// namespace, ends the sample p.GraceMS after the answer, and analyses what
// serving the request did.
func sampleRequest(ctx context.Context, opts straceOptions, p *Probe, run sampler) (*Result, error) {
	kind, hostport, err := probeTarget(p.URL)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started, stop := make(chan struct{}), make(chan struct{})
	opts.started = func() { close(started) }
	opts.stop = stop
	var until <-chan struct{}
	if len(opts.UntilPaths) > 0 {
		ch := make(chan struct{})
		opts.until, until = ch, ch
	}
	rt := &RequestTrace{URL: p.URL}
	probed := make(chan error, 1)
	go func() {
		select {
		case <-started:
		case <-pctx.Done():
			probed <- pctx.Err()
			return
		}
		target := &node.Target{PID: opts.PID}
		var err error
		if kind == "http" {
			rt.HTTP, err = node.HTTPProbe.Local(pctx, &node.HTTPProbeRequest{Target: target, URL: p.URL, Headers: p.Headers, TimeoutMS: p.TimeoutMS})
			if rt.HTTP != nil {
				rt.Client = rt.HTTP.LocalAddress
			}
		} else {
			rt.TCP, err = node.TCPProbe.Local(pctx, &node.TCPProbeRequest{Target: target, HostPort: hostport, TimeoutMS: p.TimeoutMS})
			if rt.TCP != nil {
				rt.Client = rt.TCP.LocalAddress
			}
		}
		probed <- err
		select {
		case <-time.After(time.Duration(p.GraceMS) * time.Millisecond):
		case <-pctx.Done():
		}
		if until != nil {
			select {
			case <-until:
			case <-pctx.Done():
			}
		}
		close(stop)
	}()
	res, err := run(ctx, opts)
	cancel()
	perr := <-probed
	if err != nil {
		return nil, err
	}
	if perr != nil && ctx.Err() == nil {
		return nil, engine.Errorf(engine.KindOf(perr), "strace_sample: probe %s: %v", p.URL, perr)
	}
	a := analyseRequest(res.calls, res.Processes, res.start, rt.Client, res.callsTruncated)
	if res.Dropped > 0 {
		// eBPF: the ring buffer was full for a while; the counts are
		// exact, the calls kept are not all of them.
		if a.Note != "" {
			a.Note += "; "
		}
		a.Note += fmt.Sprintf("%d call records were dropped (the ring buffer was full): the request's calls may be incomplete", res.Dropped)
	}
	res.calls = nil
	a.URL, a.HTTP, a.TCP = rt.URL, rt.HTTP, rt.TCP
	res.Request = a
	return res, nil
}

// sampleUntil traces until a path under opts.UntilPaths is touched (then
// a short grace for the rest of that work), or for opts.Duration.
func sampleUntil(ctx context.Context, opts straceOptions, run sampler) (*Result, error) {
	until, stop := make(chan struct{}), make(chan struct{})
	opts.until, opts.stop = until, stop
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-until:
			select {
			case <-time.After(untilGrace):
			case <-pctx.Done():
			}
			close(stop)
		case <-pctx.Done():
		}
	}()
	return run(ctx, opts)
}

// untilGrace is how long a sample goes on after a path it waited for was
// touched.
const untilGrace = 100 * time.Millisecond
