package kube

// End-to-end tests against the project's local cluster (test/harness).
// Each test works in a namespace of its own, deleted afterwards.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/test/harness"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

type e2e struct {
	t       testing.TB
	env     *harness.Env
	ns      string
	clients Clients
	cs      kubernetes.Interface
	specs   map[string]*engine.Spec
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// newE2E returns the cluster and a fresh namespace named after the test.
func newE2E(t testing.TB) *e2e {
	t.Helper()
	env := harness.Cluster(t)
	base := nonName.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "TestE2E")), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	ns := strings.Trim("kd-"+base+"-"+utilrand.String(4), "-")
	env.Kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if _, errOut, err := env.RunKubectl("delete", "namespace", ns, "--wait=false"); err != nil {
			t.Logf("deleting namespace %s: %v %s", ns, err, errOut)
		}
	})
	e := &e2e{t: t, env: env, ns: ns, clients: NewClients(env.Kubeconfig, "", ns), specs: map[string]*engine.Spec{}}
	cs, _, err := e.clients.Kube()
	if err != nil {
		t.Fatal(err)
	}
	e.cs = cs
	for _, s := range Specs(e.clients) {
		e.specs[s.Name] = s
	}
	// Pods are refused until the namespace's default service account exists.
	e.eventually(30*time.Second, "default service account", func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})
	return e
}

// run calls a built-in the way the engine does: defaults filled in, the
// call's context bounded by its timeout.
func (e *e2e) run(name string, args engine.Args, dry engine.DryRun) (any, error) {
	e.t.Helper()
	s := e.specs[name]
	if s == nil {
		e.t.Fatalf("no built-in %q", name)
	}
	a := engine.Args{}
	for _, p := range s.Params {
		if p.Default != nil {
			a[p.Name] = p.Default
		}
	}
	for k, v := range args {
		a[k] = v
	}
	d := a.Duration("timeout")
	if d == 0 {
		d = s.Timeout
	}
	if d == 0 {
		d = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Run(ctx, &engine.Call{Spec: s, Args: a, DryRun: dry})
}

// must runs a built-in that has to succeed and returns its result as the
// runbook would see it (decoded JSON).
func (e *e2e) must(name string, args engine.Args) map[string]any {
	e.t.Helper()
	v, err := e.run(name, args, engine.DryRunNone)
	if err != nil {
		e.t.Fatalf("%s(%v): %v", name, args, err)
	}
	return asJSON(e.t, v).(map[string]any)
}

func asJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// apply applies a YAML manifest in the test's namespace.
func (e *e2e) apply(manifest string) {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("apply", "-f", p)
}

func (e *e2e) kubectl(args ...string) string {
	e.t.Helper()
	return e.env.Kubectl(e.t, append([]string{"-n", e.ns}, args...)...)
}

func (e *e2e) waitReady(pod string) {
	e.t.Helper()
	e.kubectl("wait", "--for=condition=Ready", "pod/"+pod, "--timeout=120s")
}

// eventually retries f until it returns nil or the time is up.
func (e *e2e) eventually(d time.Duration, what string, f func() error) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached after %s: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sleeper is a bare pod whose container sleeps; busybox's sleep ignores
// SIGTERM as PID 1, so the grace period is short.
func sleeper(name, seconds string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox-local:v1
    imagePullPolicy: Never
    command: ["sleep", "%s"]
`, name, name, seconds)
}

func wantKind(t testing.TB, err error, kind engine.Kind, substr ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want a %s error", kind)
	}
	if engine.KindOf(err) != kind {
		t.Fatalf("error kind %s, want %s: %v", engine.KindOf(err), kind, err)
	}
	for _, s := range substr {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err.Error(), s)
		}
	}
}
