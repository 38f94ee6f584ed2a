// Package cri declares the built-ins that ask the node's container runtime
// through the Container Runtime Interface (CRI) over its unix socket.
//
// find_pid is a node operation (a node.Row, FindPID) with a
// JSON-serialisable request: Local asks
// this node's runtime; the node agent (package builtins/agent) serves the
// same request on the node that runs the pod.
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/engine"
)

// Endpoints are kdiag's own runtime endpoint settings, consulted after
// find_pid's runtime_endpoint argument and before /etc/crictl.yaml and the
// well-known sockets. The package reads no environment: kdiag's command
// line fills Env from $CONTAINER_RUNTIME_ENDPOINT.
type Endpoints struct {
	// Flag is kdiag's --runtime-endpoint ("" when unset).
	Flag string
	// Env is the value of kdiag's $CONTAINER_RUNTIME_ENDPOINT.
	Env string
}

// Specs returns the cri built-ins, served by this machine. defaults, if
// not nil, returns kdiag's own endpoint settings when a call runs.
func Specs(defaults func() Endpoints) []*engine.Spec {
	return SpecsFor(node.Local{}, defaults)
}

// SpecsFor returns the cri built-ins, served by x; defaults is as for
// Specs.
func SpecsFor(x node.Executor, defaults func() Endpoints) []*engine.Spec {
	if defaults == nil {
		defaults = func() Endpoints { return Endpoints{} }
	}
	send := func(ctx context.Context, req *FindPIDRequest) (*FindPIDResult, error) {
		return FindPID.Send(ctx, x, req)
	}
	return []*engine.Spec{findPIDSpec(send, defaults)}
}

// FindPIDRequest asks for a container's main process. The three endpoint
// fields are the configuration levels in order of precedence; the
// well-known sockets and /etc/crictl.yaml of the serving node come after
// them.
type FindPIDRequest struct {
	// Pod, Namespace and Container name the container (Namespace
	// defaults to "default").
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
	// ContainerID is a container ID or unique prefix, instead of Pod.
	ContainerID string `json:"container_id,omitempty"`
	// RuntimeEndpoint is find_pid's runtime_endpoint argument.
	RuntimeEndpoint string `json:"runtime_endpoint,omitempty"`
	// FlagEndpoint is kdiag's --runtime-endpoint.
	FlagEndpoint string `json:"flag_endpoint,omitempty"`
	// EnvEndpoint is kdiag's $CONTAINER_RUNTIME_ENDPOINT.
	EnvEndpoint string `json:"env_endpoint,omitempty"`
	// NodeEndpoint is the endpoint the kubelet of the pod's node uses
	// (its configuration, read by the agent Router), and Node that node:
	// it wins over FlagEndpoint and EnvEndpoint, which describe kdiag's
	// own machine.
	NodeEndpoint string `json:"node_endpoint,omitempty"`
	Node         string `json:"node,omitempty"`
}

// FindPID is find_pid as a node operation: the node agent serves it with
// Local. It is about a pod, not a process: the agent Router (package
// builtins/agent) sends it to the node of its pod, and the requests about
// the process found after it.
var FindPID = &node.Row[FindPIDRequest, FindPIDResult]{
	Builtin: "find_pid",
	Declare: func(send func(context.Context, *FindPIDRequest) (*FindPIDResult, error)) *engine.Spec {
		return findPIDSpec(send, func() Endpoints { return Endpoints{} })
	},
	Linux: Local{}.FindPID,
	Locate: func(r *FindPIDRequest) node.Pod {
		return node.Pod{Namespace: r.Namespace, Name: r.Pod, Endpoint: firstSet(r.RuntimeEndpoint, r.NodeEndpoint, r.FlagEndpoint, r.EnvEndpoint), Instead: "container_id="}
	},
	FoundPID: func(r *FindPIDResult) int { return r.PID },
}

// firstSet returns the first non-empty string.
func firstSet(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Local asks this node's runtime.
type Local struct{}

// FindPID asks this node's container runtime.
func (Local) FindPID(ctx context.Context, req *FindPIDRequest) (*FindPIDResult, error) {
	q := findPIDQuery{Pod: req.Pod, Namespace: req.Namespace, Container: req.Container, ContainerID: req.ContainerID}
	if q.Namespace == "" {
		q.Namespace = "default"
	}
	var res *FindPIDResult
	var err error
	if req.RuntimeEndpoint == "" && req.NodeEndpoint != "" {
		ep, perr := criParseEndpoint(req.NodeEndpoint, "the kubelet configuration of node "+req.Node)
		if perr != nil {
			return nil, engine.Errorf(engine.KindInvalid, "find_pid: %v", perr)
		}
		res, err = findPIDAt(ctx, q, ep)
	} else {
		res, err = findPIDEnv(ctx, q, req.RuntimeEndpoint, req.FlagEndpoint, req.EnvEndpoint)
	}
	if res != nil && res.Where == "" {
		res.Where = "this machine"
	}
	return res, err
}

// FindPIDResult is the result of find_pid.
type FindPIDResult struct {
	PID         int    `json:"pid"`
	ContainerID string `json:"container_id"`
	Container   string `json:"container"`
	Attempt     int    `json:"attempt"`
	SandboxID   string `json:"sandbox_id"`
	Pod         string `json:"pod"`
	Namespace   string `json:"namespace"`
	Runtime     string `json:"runtime"`
	Endpoint    string `json:"endpoint"`
	Source      string `json:"source"`
	// EndpointFrom says where the endpoint came from: the runtime_endpoint
	// argument, --runtime-endpoint, $CONTAINER_RUNTIME_ENDPOINT, the
	// kubelet configuration of the pod's node, crictl.yaml, a well-known
	// socket.
	EndpointFrom string `json:"endpoint_from,omitempty"`
	// Where says where find_pid ran and why: this machine, or the agent
	// pod on the pod's node (set by the agent Router).
	Where      string            `json:"where,omitempty"`
	State      string            `json:"state"`
	StartedAt  string            `json:"started_at"`
	Image      string            `json:"image"`
	Namespaces map[string]string `json:"namespaces"`
}

func findPIDSpec(send func(context.Context, *FindPIDRequest) (*FindPIDResult, error), defaults func() Endpoints) *engine.Spec {
	return &engine.Spec{
		Name: "find_pid",
		Doc: `find_pid returns the host PID of a container's main process, asking the node's container runtime through the CRI (like crictl inspect).

Give pod (and namespace, and container when the pod has several), or container_id. The
runtime socket is runtime_endpoint, else kdiag --runtime-endpoint, $CONTAINER_RUNTIME_ENDPOINT,
runtime-endpoint in /etc/crictl.yaml, or the first of the well-known containerd, CRI-O and
k3s sockets that exists. Without any socket, a container_id is looked up in /proc/*/cgroup.
Run it on the pod's node (the runtime only knows its own pods).`,
		Params: []engine.Param{
			{Name: "pod", Type: "string", Doc: "pod name"},
			{Name: "namespace", Type: "string", Doc: "pod namespace (default: the client's namespace, as for the Kubernetes built-ins)"},
			{Name: "container", Type: "string", Doc: "container name; may be omitted when the pod has one container"},
			{Name: "container_id", Type: "string", Doc: "container ID (or a unique prefix) instead of pod and container"},
			{Name: "runtime_endpoint", Type: "string", Doc: "CRI socket, e.g. unix:///run/containerd/containerd.sock"},
		},
		Result: `pid: host PID of the container's main process
container_id: full container ID
container: container name
attempt: restart attempt of the container (0 for the first run)
sandbox_id: pod sandbox ID
pod: pod name
namespace: pod namespace
runtime: runtime name and version, e.g. "containerd v2.1.4"
endpoint: CRI endpoint used
source: "cri", or "cgroup" when found by scanning /proc/*/cgroup without a runtime socket
state: container state: running, created, exited or unknown
started_at: start time, RFC 3339
image: image reference the container runs
namespaces: paths of the process's namespaces {net, pid, mnt, uts, ipc, cgroup, user}, for nsenter`,
		Effect:  engine.Read,
		Timeout: 30 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			def := defaults()
			req := &FindPIDRequest{
				Pod:             c.Args.String("pod"),
				Namespace:       c.Args.String("namespace"),
				Container:       c.Args.String("container"),
				ContainerID:     c.Args.String("container_id"),
				RuntimeEndpoint: c.Args.String("runtime_endpoint"),
				FlagEndpoint:    def.Flag,
				EnvEndpoint:     def.Env,
			}
			if req.Namespace == "" {
				req.Namespace = "default"
			}
			if req.Pod == "" && req.ContainerID == "" {
				return nil, errNoContainer
			}
			return send(ctx, req)
		},
	}
}

// findPIDQuery names the container to find.
type findPIDQuery struct {
	Pod, Namespace, Container, ContainerID string
}

// errNoContainer is find_pid's error when given neither pod nor container_id.
var errNoContainer = engine.Errorf(engine.KindInvalid, "find_pid: give pod= (with namespace= and container=) or container_id=")

// findPIDEnv resolves the endpoint from the runtime_endpoint argument,
// kdiag's --runtime-endpoint (flag) and $CONTAINER_RUNTIME_ENDPOINT (env),
// then finds the container and its PID.
func findPIDEnv(ctx context.Context, q findPIDQuery, arg, flag, env string) (*FindPIDResult, error) {
	if q.Pod == "" && q.ContainerID == "" {
		return nil, errNoContainer
	}
	ep, err := criResolveEndpointEnv(arg, flag, env)
	var none *criNoEndpointError
	switch {
	case errors.As(err, &none) && q.ContainerID != "":
		return findPIDByCgroup(q.ContainerID, none)
	case errors.As(err, &none):
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: %v", err)
	case err != nil:
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: %v", err)
	}
	return findPIDAt(ctx, q, ep)
}

// findPIDAt finds the container through the runtime at ep.
func findPIDAt(ctx context.Context, q findPIDQuery, ep *criEndpoint) (*FindPIDResult, error) {
	c, err := criDial(ep)
	if err != nil {
		return nil, fmt.Errorf("find_pid: %s: %w", ep.Endpoint, err)
	}
	defer c.Close()
	res, err := c.findPID(ctx, q)
	if err != nil && q.ContainerID != "" && engine.KindOf(err) == engine.KindUnavailable {
		// The runtime is hung: the container's processes are still in
		// its cgroup.
		if r, ferr := findPIDByCgroup(q.ContainerID, err); ferr == nil {
			r.Endpoint = ep.Endpoint
			return r, nil
		}
	}
	return res, err
}

// versionTimeout bounds the CRI Version call that starts find_pid, so that
// a hung runtime is reported (or bypassed through /proc) in seconds.
const versionTimeout = 5 * time.Second

// findPID finds the container through the CRI.
func (c *criClient) findPID(ctx context.Context, q findPIDQuery) (*FindPIDResult, error) {
	// A hung runtime is found out by its first, cheapest call.
	vctx, cancel := context.WithTimeout(ctx, versionTimeout)
	ver, err := c.Version(vctx, &runtimeapi.VersionRequest{})
	cancel()
	if err != nil {
		return nil, c.fail(vctx, "Version", err)
	}
	runtime := strings.TrimSpace(ver.RuntimeName + " " + ver.RuntimeVersion)
	var ctr *runtimeapi.Container
	if q.ContainerID != "" {
		ctr, err = c.containerByID(ctx, q.ContainerID, runtime)
	} else {
		ctr, err = c.containerOfPod(ctx, q, runtime)
	}
	if err != nil {
		return nil, err
	}
	st, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.Id, Verbose: true})
	if err != nil {
		return nil, c.fail(ctx, "ContainerStatus "+ctr.Id, err)
	}
	s := st.GetStatus()
	res := &FindPIDResult{
		ContainerID:  ctr.Id,
		Container:    ctr.GetMetadata().GetName(),
		Attempt:      int(ctr.GetMetadata().GetAttempt()),
		SandboxID:    ctr.PodSandboxId,
		Pod:          ctr.Labels["io.kubernetes.pod.name"],
		Namespace:    ctr.Labels["io.kubernetes.pod.namespace"],
		Runtime:      runtime,
		Endpoint:     c.ep.Endpoint,
		EndpointFrom: c.ep.Source,
		Source:       "cri",
		State:        criStateName(s.GetState()),
		Image:        s.GetImage().GetImage(),
		Namespaces:   map[string]string{},
	}
	if s.GetStartedAt() > 0 {
		res.StartedAt = time.Unix(0, s.GetStartedAt()).UTC().Format(time.RFC3339)
	}
	var info struct {
		PID int `json:"pid"`
	}
	if raw, ok := st.GetInfo()["info"]; ok {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, fmt.Errorf("find_pid: %s: ContainerStatus %s: verbose info is not JSON: %v", c.ep.Endpoint, ctr.Id, err)
		}
	}
	what := fmt.Sprintf("container %q of pod %q", res.Container, res.Namespace+"/"+res.Pod)
	if s.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || info.PID <= 0 {
		detail := "state " + res.State
		if s.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			detail += fmt.Sprintf(", exit code %d", s.GetExitCode())
			if s.GetReason() != "" {
				detail += ", reason " + s.GetReason()
			}
			if s.GetFinishedAt() > 0 {
				detail += ", finished " + time.Unix(0, s.GetFinishedAt()).UTC().Format(time.RFC3339)
			}
		}
		return nil, engine.Errorf(engine.KindGone, "find_pid: %s has no running process: container exited or not started (%s)", what, detail)
	}
	if _, ok := st.GetInfo()["info"]; !ok {
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: %s: runtime %s reports no verbose info with a pid", what, runtime)
	}
	res.PID = info.PID
	for _, ns := range []string{"net", "pid", "mnt", "uts", "ipc", "cgroup", "user"} {
		res.Namespaces[ns] = "/proc/" + strconv.Itoa(info.PID) + "/ns/" + ns
	}
	return res, nil
}

// containerByID finds a container by ID or unique ID prefix.
func (c *criClient) containerByID(ctx context.Context, id, runtime string) (*runtimeapi.Container, error) {
	resp, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		return nil, c.fail(ctx, "ListContainers", err)
	}
	switch cs := resp.Containers; len(cs) {
	case 0:
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: no container with ID %q on %s at %s", id, runtime, c.ep.Endpoint)
	case 1:
		return cs[0], nil
	default:
		ids := make([]string, len(cs))
		for i, x := range cs {
			ids[i] = x.Id
		}
		sort.Strings(ids)
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: container ID prefix %q is ambiguous (%s)", id, strings.Join(ids, ", "))
	}
}

// containerOfPod finds the pod's sandbox (a ready one first, then the
// newest) and the named container in it (a running one first, then the
// latest attempt).
func (c *criClient) containerOfPod(ctx context.Context, q findPIDQuery, runtime string) (*runtimeapi.Container, error) {
	pod := q.Namespace + "/" + q.Pod
	sbs, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.name": q.Pod, "io.kubernetes.pod.namespace": q.Namespace},
	}})
	if err != nil {
		return nil, c.fail(ctx, "ListPodSandbox", err)
	}
	items := sbs.Items
	if len(items) == 0 {
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: pod %q not found on %s at %s (is it scheduled on this node?)", pod, runtime, c.ep.Endpoint)
	}
	sort.SliceStable(items, func(i, j int) bool {
		ri, rj := items[i].State == runtimeapi.PodSandboxState_SANDBOX_READY, items[j].State == runtimeapi.PodSandboxState_SANDBOX_READY
		if ri != rj {
			return ri
		}
		return items[i].CreatedAt > items[j].CreatedAt
	})
	sb := items[0]
	resp, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb.Id}})
	if err != nil {
		return nil, c.fail(ctx, "ListContainers", err)
	}
	byName := map[string][]*runtimeapi.Container{}
	for _, x := range resp.Containers {
		byName[x.GetMetadata().GetName()] = append(byName[x.GetMetadata().GetName()], x)
	}
	names := slices.Sorted(maps.Keys(byName))
	name := q.Container
	switch {
	case len(names) == 0:
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: pod %q has no containers yet (sandbox %.13s is %s)", pod, sb.Id, strings.ToLower(strings.TrimPrefix(sb.State.String(), "SANDBOX_")))
	case name == "" && len(names) == 1:
		name = names[0]
	case name == "":
		return nil, engine.Errorf(engine.KindInvalid, "find_pid: pod %q has %d containers, pass container= (containers: %s)", pod, len(names), strings.Join(names, ", "))
	case byName[name] == nil:
		return nil, engine.Errorf(engine.KindNotFound, "find_pid: pod %q has no container %q (containers: %s)", pod, name, strings.Join(names, ", "))
	}
	cands := byName[name]
	sort.SliceStable(cands, func(i, j int) bool {
		ri, rj := cands[i].State == runtimeapi.ContainerState_CONTAINER_RUNNING, cands[j].State == runtimeapi.ContainerState_CONTAINER_RUNNING
		if ri != rj {
			return ri
		}
		if ai, aj := cands[i].GetMetadata().GetAttempt(), cands[j].GetMetadata().GetAttempt(); ai != aj {
			return ai > aj
		}
		return cands[i].CreatedAt > cands[j].CreatedAt
	})
	return cands[0], nil
}

// criStateName is "running", "created", "exited" or "unknown".
func criStateName(s runtimeapi.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_"))
}
