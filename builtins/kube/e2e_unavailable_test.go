package kube

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
	"k8s.io/client-go/tools/clientcmd"
)

// apiProxy stands between kdiag and the real API server: it forwards, or
// is down (connection refused, like a restarting API server), or accepts
// and never answers (like a frozen one).
type apiProxy struct {
	t        *testing.T
	addr     string // 127.0.0.1:port
	upstream string
	mu       sync.Mutex
	ln       net.Listener
	hang     bool
	conns    []net.Conn
}

func newAPIProxy(t *testing.T, upstream string) *apiProxy {
	p := &apiProxy{t: t, upstream: upstream}
	p.up()
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.down)
	return p
}

// up listens (on the same port after the first time) and forwards.
func (p *apiProxy) up() {
	addr := "127.0.0.1:0"
	if p.addr != "" {
		addr = p.addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			hang := p.hang
			p.mu.Unlock()
			if hang {
				continue // accepted, never answered
			}
			go p.forward(c)
		}
	}()
}

func (p *apiProxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// down closes the listener and every connection: new ones are refused.
func (p *apiProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// proxied returns built-ins that reach the cluster through a proxy.
func proxied(t *testing.T, e *e2e) (*apiProxy, map[string]*engine.Spec) {
	cfg, err := clientcmd.LoadFromFile(e.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var upstream string
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		upstream = u.Host
	}
	p := newAPIProxy(t, upstream)
	for _, c := range cfg.Clusters {
		c.Server = "https://" + p.addr
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	specs := map[string]*engine.Spec{}
	for _, s := range Specs(NewClients(path, "", e.ns)) {
		specs[s.Name] = s
	}
	return p, specs
}

// TestE2EReadsRetryWritesDoNot: while the API server refuses connections
// for a moment (restarting), a read retries inside its deadline and
// succeeds; a write fails at once, unretried, with kind unavailable naming
// the API server.
func TestE2EReadsRetryWritesDoNot(t *testing.T) {
	e := newE2E(t)
	e.kubectl("create", "configmap", "cm", "--from-literal=a=1")
	p, specs := proxied(t, e)
	p.down()
	go func() { time.Sleep(900 * time.Millisecond); p.up() }()
	e.specs = specs
	t0 := time.Now()
	got := e.must("get", engine.Args{"kind": "configmap", "name": "cm"})
	if took := time.Since(t0); took < 800*time.Millisecond || got["data"].(map[string]any)["a"] != "1" {
		t.Fatalf("get after %s: %v; want the configmap once the API server is back", took, got)
	}
	p.down()
	t0 = time.Now()
	_, err := e.run("patch_configmap", engine.Args{"name": "cm", "set": map[string]any{"a": "2"}}, engine.DryRunNone)
	if engine.KindOf(err) != engine.KindUnavailable || !strings.Contains(err.Error(), "patch_configmap: the API server at https://"+p.addr) || time.Since(t0) > 5*time.Second {
		t.Fatalf("patch_configmap with the API server down: %v after %s; want kind unavailable naming it, at once", err, time.Since(t0))
	}
	if v := e.kubectl("get", "configmap", "cm", "-o", "jsonpath={.data.a}"); v != "1" {
		t.Fatalf("the configmap changed: a=%s", v)
	}
}

// TestE2EHungAPIServer: an API server that accepts connections and never
// answers: get_pod ends at its deadline with kind unavailable naming it,
// the next call fails in the health check's time, and once it answers
// again calls succeed.
func TestE2EHungAPIServer(t *testing.T) {
	e := newE2E(t)
	p, specs := proxied(t, e)
	e.specs = specs
	p.down()
	p.mu.Lock()
	p.hang = true
	p.mu.Unlock()
	p.up()
	t0 := time.Now()
	_, err := e.run("get_pod", engine.Args{"name": "nope", "timeout": "2s"}, engine.DryRunNone)
	took := time.Since(t0)
	if engine.KindOf(err) != engine.KindUnavailable || !strings.Contains(err.Error(), "get_pod: the API server at https://"+p.addr+" did not answer within 2") || took > 8*time.Second {
		t.Fatalf("get_pod against a hung API server: %v after %s", err, took)
	}
	t0 = time.Now()
	_, err = e.run("list", engine.Args{"kind": "pod"}, engine.DryRunNone)
	if engine.KindOf(err) != engine.KindUnavailable || !strings.Contains(err.Error(), "still not answering") || time.Since(t0) > 5*time.Second {
		t.Fatalf("list after that: %v after %s; want a fast unavailable", err, time.Since(t0))
	}
	p.down()
	p.mu.Lock()
	p.hang = false
	p.mu.Unlock()
	p.up()
	if _, err := e.run("list", engine.Args{"kind": "pod"}, engine.DryRunNone); err != nil {
		t.Fatalf("list once the API server answers: %v", err)
	}
}
