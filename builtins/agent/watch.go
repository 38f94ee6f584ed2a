package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errAPIStalled marks a session ended because the API server, which
// carries its stream (an exec), stopped answering while a call was in
// flight.
var errAPIStalled = errors.New("the API server carrying the session's stream stopped answering")

// apiWatchEvery is how often a call in flight over a session asks the API
// server's /readyz/ping whether it still answers (each ask bounded by
// apiHealthTimeout).
var apiWatchEvery = 3 * time.Second

// watchAPI watches the API server while a call on s is in flight: when it
// does not answer /readyz/ping within apiHealthTimeout, s is ended with
// errAPIStalled, so that the call fails now instead of waiting on a stream
// that cannot move until its own deadline. A slow call on a healthy API
// server (a long trace) is left alone. The returned func ends the watch.
func (r *Router) watchAPI(s *session) (stop func()) {
	cs, _, err := r.opts.Clients.Kube()
	if err != nil {
		return func() {}
	}
	rc := cs.Discovery().RESTClient()
	if rc == nil {
		return func() {} // a fake clientset
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(apiWatchEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case <-t.C:
			}
			hctx, hcancel := context.WithTimeout(ctx, apiHealthTimeout)
			perr := rc.Get().AbsPath("/readyz/ping").Do(hctx).Error()
			hcancel()
			if perr == nil || ctx.Err() != nil {
				continue
			}
			s.fail(fmt.Errorf("%w (/readyz/ping: %v)", errAPIStalled, perr))
			s.stop()
			return
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
