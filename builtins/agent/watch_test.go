package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
)

// TestWatchAPIEndsStalledSession: a call in flight over a session whose
// agent does not answer is left alone while the API server answers
// /readyz/ping (it ends at its own deadline), and ended within about
// apiWatchEvery+apiHealthTimeout once the API server stops answering,
// with errAPIStalled, instead of at its deadline.
func TestWatchAPIEndsStalledSession(t *testing.T) {
	var hang atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if hang.Load() {
			<-req.Context().Done()
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r, _ := agentRouter(t, srv.URL)
	defer func(every, wait time.Duration) { apiWatchEvery, cancelWait = every, wait }(apiWatchEvery, cancelWait)
	apiWatchEvery, cancelWait = 100*time.Millisecond, 100*time.Millisecond

	inR, inW := io.Pipe()
	go io.Copy(io.Discard, inR) // the agent reads its frames and never answers
	outR, outW := io.Pipe()
	go io.WriteString(outW, `{"v":2,"id":0,"hello":{"pid":1}}`+"\n")
	stopped := make(chan struct{})
	s := newSession("node agent ns/quiet on node n", inW, outR, func() {
		select {
		case <-stopped:
		default:
			close(stopped)
			outW.CloseWithError(errors.New("stopped"))
		}
	}, nil)
	if _, err := s.waitHello(context.Background(), "ps"); err != nil {
		t.Fatal(err)
	}
	call := func(d time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		stop := r.watchAPI(s)
		defer stop()
		start := time.Now()
		var ps node.PSResult
		err := s.call(ctx, "ps", &node.ProcRequest{Target: node.Target{PID: 1}}, &ps)
		return time.Since(start), err
	}
	// The API server answers: a slow call is not the API server's fault.
	took, err := call(time.Second)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errAPIStalled) || took < time.Second || s.broken() {
		t.Fatalf("with the API server answering: %v after %s (session broken: %v)", err, took, s.broken())
	}
	hang.Store(true)
	took, err = call(30 * time.Second)
	if !errors.Is(err, errBroken) || !errors.Is(err, errAPIStalled) || !strings.Contains(err.Error(), "/readyz/ping: ") {
		t.Errorf("with the API server not answering: %v", err)
	}
	if took > apiWatchEvery+apiHealthTimeout+2*time.Second {
		t.Errorf("the call ended %s after it began; want about %s", took, apiWatchEvery+apiHealthTimeout)
	}
	<-stopped
}
