package cri

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kdiag/kdiag/engine"
)

const (
	ready    = runtimeapi.PodSandboxState_SANDBOX_READY
	notReady = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	running  = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited   = runtimeapi.ContainerState_CONTAINER_EXITED
)

// fakeWorld has: default/web (app, sidecar), default/solo (one container,
// restarted once, with an older dead sandbox), default/crashed (exited
// container) and prod/solo (same name, other namespace).
func fakeWorld() *fakeRuntime {
	return &fakeRuntime{
		sandboxes: []*runtimeapi.PodSandbox{
			fakeSandbox("sb-web", "web", "default", ready, 10),
			fakeSandbox("sb-solo-old", "solo", "default", notReady, 5),
			fakeSandbox("sb-solo", "solo", "default", ready, 20),
			fakeSandbox("sb-crashed", "crashed", "default", ready, 30),
			fakeSandbox("sb-prodsolo", "solo", "prod", ready, 40),
		},
		containers: []*runtimeapi.Container{
			fakeContainer("aaaa1111", "sb-web", "web", "default", "app", 0, running),
			fakeContainer("aaaa2222", "sb-web", "web", "default", "sidecar", 0, running),
			fakeContainer("bbbb0000", "sb-solo-old", "solo", "default", "main", 0, exited),
			fakeContainer("bbbb1111", "sb-solo", "solo", "default", "main", 1, running),
			fakeContainer("bbbb2222", "sb-solo", "solo", "default", "main", 0, exited),
			fakeContainer("cccc1111", "sb-crashed", "crashed", "default", "worker", 3, exited),
			fakeContainer("dddd1111", "sb-prodsolo", "solo", "prod", "main", 0, running),
		},
		pids: map[string]int{"aaaa1111": 101, "aaaa2222": 102, "bbbb1111": 201, "dddd1111": 401},
	}
}

func TestFindPIDSelection(t *testing.T) {
	ep := serveFake(t, fakeWorld())
	for _, tc := range []struct {
		name    string
		q       findPIDQuery
		wantPID int
		wantID  string
		kind    engine.Kind
		msg     string
	}{
		{name: "named container", q: findPIDQuery{Pod: "web", Namespace: "default", Container: "sidecar"}, wantPID: 102, wantID: "aaaa2222"},
		{name: "only container, restarted: the running attempt of the ready sandbox", q: findPIDQuery{Pod: "solo", Namespace: "default"}, wantPID: 201, wantID: "bbbb1111"},
		{name: "namespace matters", q: findPIDQuery{Pod: "solo", Namespace: "prod"}, wantPID: 401, wantID: "dddd1111"},
		{name: "by ID prefix", q: findPIDQuery{ContainerID: "aaaa1"}, wantPID: 101, wantID: "aaaa1111"},
		{name: "several containers, none named", q: findPIDQuery{Pod: "web", Namespace: "default"},
			kind: engine.KindInvalid, msg: `find_pid: pod "default/web" has 2 containers, pass container= (containers: app, sidecar)`},
		{name: "no such container", q: findPIDQuery{Pod: "web", Namespace: "default", Container: "db"},
			kind: engine.KindNotFound, msg: `find_pid: pod "default/web" has no container "db" (containers: app, sidecar)`},
		{name: "no such pod", q: findPIDQuery{Pod: "web", Namespace: "prod"},
			kind: engine.KindNotFound, msg: `find_pid: pod "prod/web" not found on fakeruntime v9.9 at ` + ep + ` (is it scheduled on this node?)`},
		{name: "exited container has pid 0", q: findPIDQuery{Pod: "crashed", Namespace: "default"},
			kind: engine.KindGone, msg: `find_pid: container "worker" of pod "default/crashed" has no running process: container exited or not started (state exited, exit code 137, reason OOMKilled, finished 2023-11-14T22:15:00Z)`},
		{name: "ambiguous ID prefix", q: findPIDQuery{ContainerID: "aaaa"},
			kind: engine.KindInvalid, msg: `find_pid: container ID prefix "aaaa" is ambiguous (aaaa1111, aaaa2222)`},
		{name: "unknown ID", q: findPIDQuery{ContainerID: "ffff"},
			kind: engine.KindNotFound, msg: `find_pid: no container with ID "ffff" on fakeruntime v9.9 at ` + ep},
		{name: "nothing to find", q: findPIDQuery{Namespace: "default"},
			kind: engine.KindInvalid, msg: `find_pid: give pod= (with namespace= and container=) or container_id=`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := findPID(context.Background(), tc.q, ep, "")
			if tc.msg != "" {
				if err == nil || err.Error() != tc.msg || engine.KindOf(err) != tc.kind {
					t.Fatalf("err = %v (kind %s)\nwant  %s (kind %s)", err, engine.KindOf(err), tc.msg, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.PID != tc.wantPID || res.ContainerID != tc.wantID || res.State != "running" || res.Source != "cri" ||
				res.Runtime != "fakeruntime v9.9" || res.Endpoint != ep || res.StartedAt != "2023-11-14T22:13:20Z" {
				t.Errorf("got %+v, want pid %d id %s", res, tc.wantPID, tc.wantID)
			}
		})
	}
}

func TestFindPIDResultFields(t *testing.T) {
	ep := serveFake(t, fakeWorld())
	s := Specs(func() Endpoints { return Endpoints{Flag: ep, Env: "unix:///kdiag-env-is-below-the-flag.sock"} })[0]
	v, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: engine.Args{"pod": "web", "namespace": "default", "container": "app"}})
	if err != nil {
		t.Fatal(err)
	}
	// $CONTAINER_RUNTIME_ENDPOINT, as kdiag's command line passes it, is
	// used when --runtime-endpoint is not set.
	s = Specs(func() Endpoints { return Endpoints{Env: ep} })[0]
	byEnv, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: engine.Args{"pod": "web", "namespace": "default", "container": "app"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := byEnv.(*FindPIDResult).EndpointFrom; got != "CONTAINER_RUNTIME_ENDPOINT" {
		t.Errorf("endpoint from env: endpoint_from = %q", got)
	}
	want := &FindPIDResult{
		PID: 101, ContainerID: "aaaa1111", Container: "app", SandboxID: "sb-web", Pod: "web", Namespace: "default",
		Runtime: "fakeruntime v9.9", Endpoint: ep, Source: "cri", EndpointFrom: "--runtime-endpoint", Where: "this machine", State: "running", StartedAt: "2023-11-14T22:13:20Z",
		Image: "registry.example/app:v1",
		Namespaces: map[string]string{"net": "/proc/101/ns/net", "pid": "/proc/101/ns/pid", "mnt": "/proc/101/ns/mnt",
			"uts": "/proc/101/ns/uts", "ipc": "/proc/101/ns/ipc", "cgroup": "/proc/101/ns/cgroup", "user": "/proc/101/ns/user"},
	}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("find_pid (-want +got):\n%s", diff)
	}
}

func TestFindPIDSocketErrors(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for _, tc := range []struct {
		endpoint string
		kind     engine.Kind
		msg      string
	}{
		{"unix://" + filepath.Join(dir, "missing.sock"), engine.KindNotFound, "no such socket; is the container runtime running on this node?"},
		{"unix://" + stale, engine.KindUnavailable, "is not answering: connection refused (stale socket: the runtime is not listening"},
		{"tcp://localhost:1234", engine.KindInvalid, "only unix:// sockets are supported"},
	} {
		_, err := findPID(context.Background(), findPIDQuery{Pod: "web", Namespace: "default"}, tc.endpoint, "")
		if engine.KindOf(err) != tc.kind || err == nil || !strings.HasPrefix(err.Error(), "find_pid: ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v (kind %s), want kind %s containing %q", tc.endpoint, err, engine.KindOf(err), tc.kind, tc.msg)
		}
	}
}

// isolateEndpoints points the endpoint sources at an empty directory.
func isolateEndpoints(t *testing.T) string {
	dir := t.TempDir()
	oldConfig, oldSockets := criConfigPath, criSockets
	criConfigPath = filepath.Join(dir, "crictl.yaml")
	criSockets = []string{filepath.Join(dir, "run/containerd/containerd.sock"), filepath.Join(dir, "run/crio/crio.sock"), filepath.Join(dir, "var/run/crio/crio.sock")}
	t.Cleanup(func() { criConfigPath, criSockets = oldConfig, oldSockets })
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "")
	return dir
}

func TestResolveEndpoint(t *testing.T) {
	dir := isolateEndpoints(t)
	// var/run -> run, as on most distributions.
	for _, d := range []string{"run/crio", "run/containerd", "var"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.Symlink(filepath.Join(dir, "run"), filepath.Join(dir, "var/run"))
	crio := criSockets[1]
	os.WriteFile(criSockets[0], nil, 0o644) // not a socket: skipped
	if _, err := criResolveEndpoint("", ""); err == nil || err.Error() != "no CRI runtime socket found (tried "+criSockets[0]+", "+crio+
		"); pass runtime_endpoint=, kdiag --runtime-endpoint, set CONTAINER_RUNTIME_ENDPOINT or runtime-endpoint in "+criConfigPath+
		", e.g. unix:///run/containerd/containerd.sock" {
		t.Errorf("no socket: err = %v", err)
	}
	l, err := net.Listen("unix", crio)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := ""
	check := func(arg, flag, wantEndpoint, wantSource string) {
		t.Helper()
		ep, err := criResolveEndpointEnv(arg, flag, env)
		if err != nil {
			t.Fatalf("arg %q flag %q: %v", arg, flag, err)
		}
		if ep.Endpoint != wantEndpoint || ep.Source != wantSource {
			t.Errorf("arg %q flag %q: got %s from %s, want %s from %s", arg, flag, ep.Endpoint, ep.Source, wantEndpoint, wantSource)
		}
	}
	check("", "", "unix://"+crio, "autodetected")
	os.WriteFile(criConfigPath, []byte("timeout: 2\n"), 0o644)
	check("", "", "unix://"+crio, "autodetected")
	os.WriteFile(criConfigPath, []byte("runtime-endpoint: unix:///from/config.sock\nimage-endpoint: unix:///x.sock\n"), 0o644)
	check("", "", "unix:///from/config.sock", criConfigPath)
	// The package reads no environment: kdiag's command line passes it.
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "/from/process-env.sock")
	check("", "", "unix:///from/config.sock", criConfigPath)
	env = "/from/env.sock"
	check("", "", "unix:///from/env.sock", "CONTAINER_RUNTIME_ENDPOINT")
	check("", "unix:///from/flag.sock", "unix:///from/flag.sock", "--runtime-endpoint")
	check("unix:///from/arg.sock", "unix:///from/flag.sock", "unix:///from/arg.sock", "runtime_endpoint")
	if _, err := criResolveEndpoint("relative.sock", ""); err == nil {
		t.Error("relative socket path accepted")
	}
}
