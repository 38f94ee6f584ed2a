package agent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestAPIUnavailableNamesStorage: a node request that got no answer in
// agent mode, with the API server answering /readyz/ping but not /readyz
// because etcd does not answer (as TestFaultAgentEtcdFrozen found on the
// local cluster), fails naming the API server's storage, not the agent or
// the node; the next request's check says it still does not; an API
// server that answers both is not blamed; one that answers nothing is.
func TestAPIUnavailableNamesStorage(t *testing.T) {
	readyz := "etcd"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/readyz/ping":
			w.Write([]byte("ok"))
		case req.URL.Path == "/readyz" && readyz == "etcd":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("[+]ping ok\n[-]etcd failed: reason withheld\n[+]etcd-readiness ok\nreadyz check failed\n"))
		case req.URL.Path == "/readyz" && readyz == "hang":
			<-req.Context().Done()
		case req.URL.Path == "/readyz":
			w.Write([]byte("ok"))
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	r, rc := agentRouter(t, srv.URL)
	cause := errors.New("waiting for the session: context deadline exceeded")
	got := r.apiUnavailable("find_pid", "on node n1", cause)
	if got == nil || engine.KindOf(got) != engine.KindUnavailable || !strings.Contains(got.Error(), "find_pid: the API server at "+rc.Host+" answers, but its storage does not (/readyz fails etcd; /readyz/ping answers): the node agent on node n1 is reached through it") ||
		!strings.Contains(got.Error(), "until etcd answers") || !errors.Is(got, cause) {
		t.Errorf("etcd failing /readyz: %v (kind %s)", got, engine.KindOf(got))
	}
	readyz = "hang"
	got = r.apiUnavailable("find_pid", "on node n1", nil)
	if got == nil || engine.KindOf(got) != engine.KindUnavailable || !strings.Contains(got.Error(), "answers, but its storage still does not (/readyz got no answer within 3s; /readyz/ping answers)") {
		t.Errorf("/readyz hanging: %v (kind %s)", got, engine.KindOf(got))
	}
	readyz = "ok"
	if got = r.apiUnavailable("find_pid", "on node n1", cause); got != nil {
		t.Errorf("a healthy API server: %v", got)
	}
	srv.Close()
	got = r.apiUnavailable("find_pid", "on node n1", nil)
	if got == nil || !strings.Contains(got.Error(), "find_pid: the API server at "+rc.Host+" did not answer (/readyz/ping: ") {
		t.Errorf("no API server: %v", got)
	}
}

// agentRouter is an agent-mode Router whose API server is at host.
func agentRouter(t *testing.T, host string) (*Router, *rest.Config) {
	t.Helper()
	rc := &rest.Config{Host: host}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Mode: ModeAgent, Clients: kube.StaticClients(cs, rc, "")}), rc
}
