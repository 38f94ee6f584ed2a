package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kdiag/kdiag/builtins/cri"
	"github.com/kdiag/kdiag/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// kubeletRuntimeTimeout bounds the read of a kubelet's configuration.
const kubeletRuntimeTimeout = 5 * time.Second

// kubeletRuntime returns the CRI endpoint the kubelet of node n uses, read
// once from its configuration through the API server's node proxy
// (/api/v1/nodes/NAME/proxy/configz, containerRuntimeEndpoint); "" when
// the kubelet does not say or the proxy is not allowed (nodes/proxy get):
// then the endpoint is found as before, on the node.
func (r *Router) kubeletRuntime(ctx context.Context, n *nodeInfo) string {
	r.mu.Lock()
	if n.runtimeRead {
		defer r.mu.Unlock()
		return n.runtime
	}
	r.mu.Unlock()
	ep, why := "", ""
	cs, _, err := r.opts.Clients.Kube()
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, kubeletRuntimeTimeout)
		defer cancel()
		var raw []byte
		raw, err = cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", n.name, "proxy", "configz").Do(ctx).Raw()
		var cfg struct {
			Kubelet struct {
				Endpoint string `json:"containerRuntimeEndpoint"`
			} `json:"kubeletconfig"`
		}
		if err == nil {
			err = json.Unmarshal(raw, &cfg)
		}
		ep = cfg.Kubelet.Endpoint
	}
	switch {
	case apierrors.IsForbidden(err):
		why = "reading it needs get on nodes/proxy (a ClusterRole rule: - apiGroups: [\"\"] resources: [\"nodes/proxy\"] verbs: [\"get\"]), or name the endpoint with find_pid's runtime_endpoint="
	case err != nil:
		why = clip(err.Error())
	case ep == "":
		why = "it names no containerRuntimeEndpoint"
	}
	r.mu.Lock()
	n.runtime, n.runtimeRead, n.runtimeWhy = ep, true, why
	r.mu.Unlock()
	return ep
}

// aimFindPID gives a find_pid request about a pod on node n the runtime
// endpoint of n's kubelet, unless the call named one itself: kdiag's own
// --runtime-endpoint and $CONTAINER_RUNTIME_ENDPOINT describe kdiag's
// machine, not the pod's node.
func (r *Router) aimFindPID(ctx context.Context, req any, n *nodeInfo) {
	fr, ok := req.(*cri.FindPIDRequest)
	if !ok || fr.RuntimeEndpoint != "" {
		return
	}
	if ep := r.kubeletRuntime(ctx, n); ep != "" {
		fr.NodeEndpoint, fr.Node = ep, n.name
		r.mu.Lock()
		n.endpoint = ep
		r.mu.Unlock()
	}
}

// runtimeNote adds to find_pid's failure on node n why the endpoint did
// not come from n's kubelet configuration, when it could not: the agent
// then looked for the well-known sockets on the node, which a custom
// socket path defeats.
func (r *Router) runtimeNote(err error, n *nodeInfo) error {
	r.mu.Lock()
	why := n.runtimeWhy
	r.mu.Unlock()
	if err == nil || why == "" {
		return err
	}
	return engine.Wrapf(engine.KindOf(err), err, "%v (node %s's runtime endpoint was not learnt from its kubelet configuration: %s)", err, n.name, why)
}

// where says where a request for node n runs and why, for find_pid's
// result.
func (r *Router) where(n *nodeInfo) string {
	switch {
	case r.opts.Mode == ModeLocal:
		return "this machine (--node-mode=local)"
	case n == nil:
		return "this machine (no pod named)"
	case r.opts.Mode == ModeAuto && r.isLocal(n):
		return fmt.Sprintf("this machine, which is node %s (its name or address is this machine's; --node-mode=auto)", n.name)
	}
	return fmt.Sprintf("an agent pod on node %s (--node-mode=%s)", n.name, r.opts.Mode)
}
