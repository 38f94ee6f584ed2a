package cri

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a CRI RuntimeService serving fixed sandboxes and
// containers, for the edge cases a real runtime does not produce on
// demand (exited containers with pid 0, many attempts, stale sandboxes).
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	pids       map[string]int // container ID -> pid; 0 for exited
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fakeruntime", RuntimeVersion: "v9.9", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	var out []*runtimeapi.PodSandbox
	for _, sb := range f.sandboxes {
		match := true
		for k, v := range req.GetFilter().GetLabelSelector() {
			if sb.Labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, sb)
		}
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if id := req.GetFilter().GetId(); id != "" && !strings.HasPrefix(c.Id, id) {
			continue
		}
		if sb := req.GetFilter().GetPodSandboxId(); sb != "" && c.PodSandboxId != sb {
			continue
		}
		out = append(out, c)
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	for _, c := range f.containers {
		if c.Id != req.ContainerId {
			continue
		}
		st := &runtimeapi.ContainerStatus{Id: c.Id, Metadata: c.Metadata, State: c.State, Image: c.Image,
			StartedAt: 1_700_000_000_000_000_000, Labels: c.Labels}
		if c.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			st.ExitCode, st.Reason, st.FinishedAt = 137, "OOMKilled", 1_700_000_100_000_000_000
		}
		info := map[string]string{}
		if req.Verbose {
			info["info"] = `{"sandboxID":"` + c.PodSandboxId + `","pid":` + strconv.Itoa(f.pids[c.Id]) + `,"runtimeSpec":{}}`
		}
		return &runtimeapi.ContainerStatusResponse{Status: st, Info: info}, nil
	}
	return nil, status.Errorf(codes.NotFound, "container %q not found", req.ContainerId)
}

// serveFake serves f on a unix socket and returns its endpoint.
func serveFake(t *testing.T, f *fakeRuntime) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

func fakeSandbox(id, pod, ns string, state runtimeapi.PodSandboxState, created int64) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{Id: id, State: state, CreatedAt: created,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: pod, Namespace: ns},
		Labels:   map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": ns}}
}

func fakeContainer(id, sandbox, pod, ns, name string, attempt uint32, state runtimeapi.ContainerState) *runtimeapi.Container {
	return &runtimeapi.Container{Id: id, PodSandboxId: sandbox, State: state, CreatedAt: int64(attempt),
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: "registry.example/" + name + ":v1"},
		Labels: map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": ns,
			"io.kubernetes.container.name": name}}
}
