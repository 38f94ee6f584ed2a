package kube

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// limitedKubeconfig creates a service account that may only get pods and
// returns a kubeconfig that authenticates as it.
func (e *e2e) limitedKubeconfig() string {
	e.t.Helper()
	e.kubectl("create", "serviceaccount", "limited")
	e.kubectl("create", "role", "pod-reader", "--verb=get", "--resource=pods")
	e.kubectl("create", "rolebinding", "limited-pod-reader", "--role=pod-reader", "--serviceaccount="+e.ns+":limited")
	token := strings.TrimSpace(e.kubectl("create", "token", "limited"))

	admin, err := clientcmd.LoadFromFile(e.env.Kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = cluster
	cfg.AuthInfos["limited"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["limited"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "limited", Namespace: e.ns}
	cfg.CurrentContext = "limited"
	path := filepath.Join(e.t.TempDir(), "limited.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func TestE2EPreflightLimitedUser(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "3600"))
	limited := NewClients(e.limitedKubeconfig(), "", "")
	if got := limited.Namespace(); got != e.ns {
		t.Fatalf("namespace from the kubeconfig context: %q, want %q", got, e.ns)
	}
	ctx := context.Background()

	if err := Preflight(ctx, limited, Needs("get_pod", "")); err != nil {
		t.Errorf("get_pod is allowed: %v", err)
	}
	err := Preflight(ctx, limited, Needs("attach_ephemeral", e.ns))
	user := "system:serviceaccount:" + e.ns + ":limited"
	wantKind(t, err, engine.KindForbidden,
		`rbac: the current user "`+user+`" cannot "update" "pods/ephemeralcontainers" in namespace "`+e.ns+`", nor "watch" "pods" in namespace "`+e.ns+`"; `+
			`add to a Role: - apiGroups: [""] resources: ["pods/ephemeralcontainers"] verbs: ["update"] - apiGroups: [""] resources: ["pods"] verbs: ["watch"]`)

	// Without a preflight, the 403 mid-run still names the missing rule.
	specs := map[string]*engine.Spec{}
	for _, s := range Specs(limited) {
		specs[s.Name] = s
	}
	s := specs["exec"]
	e.waitReady("web")
	_, err = s.Run(ctx, &engine.Call{Spec: s, Args: engine.Args{"pod": "web", "command": []any{"true"}, "timeout": "30s"}})
	wantKind(t, err, engine.KindForbidden, "exec: forbidden:", user, `add to a Role: - apiGroups: [""] resources: ["pods/exec"] verbs: ["create"]`)
	s = specs["list"]
	_, err = s.Run(ctx, &engine.Call{Spec: s, Args: engine.Args{"kind": "cm"}})
	wantKind(t, err, engine.KindForbidden, "list: forbidden:", `resources: ["configmaps"] verbs: ["list"]`)
}
