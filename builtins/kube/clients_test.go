package kube

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: shop}
- name: two
  context: {cluster: c, user: u}
current-context: one
`

func TestNewClientsIsLazy(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-kubeconfig")
	c := NewClients(missing, "", "")
	specs := Specs(c) // must not read anything
	lc := c.(*lazyClients)
	if lc.cc != nil || lc.cs != nil {
		t.Fatal("Specs built a client configuration")
	}
	var get *engine.Spec
	for _, s := range specs {
		if s.Name == "get_pod" {
			get = s
		}
	}
	_, err := get.Run(context.Background(), &engine.Call{Spec: get, Args: engine.Args{"name": "x", "namespace": "default"}})
	if err == nil || !strings.HasPrefix(err.Error(), "get_pod: kubernetes client configuration:") || !strings.Contains(err.Error(), "no-such-kubeconfig") {
		t.Errorf("err = %v", err)
	}
}

func TestNewClientsNamespaceAndContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ context, namespace, want string }{
		{"", "", "shop"},
		{"two", "", "default"},
		{"one", "ops", "ops"},
	} {
		c := NewClients(path, tc.context, tc.namespace)
		if got := c.Namespace(); got != tc.want {
			t.Errorf("context %q namespace %q: Namespace() = %q, want %q", tc.context, tc.namespace, got, tc.want)
		}
		_, rc, err := c.Kube()
		if err != nil {
			t.Fatal(err)
		}
		if rc.Host != "https://127.0.0.1:1" || rc.BearerToken != "t" || rc.UserAgent != "kdiag" {
			t.Errorf("rest config: host %q token %q agent %q", rc.Host, rc.BearerToken, rc.UserAgent)
		}
	}
	t.Setenv("KUBECONFIG", path)
	if got := NewClients("", "", "").Namespace(); got != "shop" {
		t.Errorf("from $KUBECONFIG: Namespace() = %q, want shop", got)
	}
	if got := debugImage(NewClients("", "", "")); got != DefaultDebugImage {
		t.Errorf("debugImage = %q", got)
	}
	if got := debugImage(WithDebugImage(NewClients("", "", ""), "busybox-local:v1")); got != "busybox-local:v1" {
		t.Errorf("debugImage WithDebugImage = %q", got)
	}
}
