// Package agent runs find_pid, the node built-ins (the table of package
// node: enter_ns, run, http_probe, read_file, ps...) and strace_sample on
// the node that hosts their target
// when kdiag itself runs elsewhere — on a laptop, or in a Job pod — through
// a short-lived agent pod on that node.
//
// # Modes
//
// Router is the node.Executor that builtins.All hands to the node, trace
// and cri built-ins (their declarations do not change; only where they
// run). It knows no built-in by name: every node operation is a node.Row,
// from which the Router takes the process (or, for find_pid, the pod) a
// request is about, and the agent its request and result types and the
// Linux implementation that serves it. Its Mode (kdiag --node-mode) is:
//
//	local  every request runs on this machine (kdiag's behaviour before agents)
//	agent  every request runs in an agent pod on the target's node
//	auto   local when the target's node is this machine, else agent (the default)
//
// The target's node is learnt from find_pid(pod=, namespace=): the Router
// gets the pod and takes its spec.nodeName. Node built-ins that follow go
// to the node where find_pid found their pid (else the node of the last
// find_pid). A node built-in called before any find_pid(pod=) runs locally
// in auto mode and fails with an "invalid" error in agent mode, saying to
// call find_pid first; so does find_pid(container_id=) alone in agent mode.
// Auto mode takes the node for this machine when the machine's host name is
// the node's name (or its first label), or when one of the pod's
// status.hostIPs is an address of one of the machine's interfaces (loopback
// excepted); if the pod cannot be read, auto mode runs locally.
//
// # The agent pod
//
// One agent pod per node and run, created on first use: pinned with
// nodeName, hostPID and hostNetwork, privileged, running as root, with the
// directory of the CRI socket mounted from the host at the same path (the
// socket of find_pid's runtime_endpoint, kdiag's --runtime-endpoint or
// $CONTAINER_RUNTIME_ENDPOINT, in that order; without one, the host's /run,
// where the well-known sockets are autodetected), every taint tolerated, no
// service account token, activeDeadlineSeconds of an hour as a safety net,
// labels app.kubernetes.io/managed-by=kdiag, kdiag.io/role=agent and
// kdiag.io/run=<the Router's run id>, and an annotation kdiag.io/heartbeat
// (RFC 3339) that the running kdiag refreshes every 10 s. The image is
// kdiag's own (--agent-image, $KDIAG_AGENT_IMAGE, default
// ghcr.io/kdiag/kdiag:<kdiag's version>, see Image), with kdiag at /kdiag; its command is
// `kdiag agent idle`, which waits for SIGTERM. Agent pods go in
// --agent-namespace, by default the namespace of the pod they serve.
//
// The pod's deletion is registered with Call.Defer by the call that created
// it, so it happens when the run ends, whether it succeeded, failed or was
// cancelled; the cleanup waits until the pod is gone. A kdiag that is killed
// cannot delete its agent: before creating an agent, a Router deletes the
// agent pods of the namespace whose heartbeat is more than 60 s old (or that
// have ended), and activeDeadlineSeconds ends the rest.
//
// A Router may be shared by concurrent runs (kdiag serve builds the
// built-ins once): at the end of the run that created it, an agent is first
// withdrawn (later requests make a new one, registered with their own run),
// then deleted once the requests using it are done. A request whose agent
// pod disappeared is retried once with a new agent.
//
// # Transport and protocol
//
// Each request is one pods/exec (WebSocket, SPDY fallback, as kubectl exec)
// of `kdiag agent call` in the agent container: the Request envelope on its
// standard input, the Response on its standard output, version 1:
//
//	{"v":1,"op":"http_probe","timeout_ms":9950,"request":{...node.HTTPProbeRequest...}}
//	{"v":1,"result":{...node.HTTPProbeResult...}}
//	{"v":1,"error":{"kind":"gone","message":"enter_ns: process 4242 does not exist"}}
//
// The agent serves it with the operation's Linux implementation, the very code of local
// mode, so the result JSON is the same either way and the transcript does
// not say where a call ran (except for the agent's deletion among the run's
// cleanups). Expected failures keep their engine.Kind; an error without a
// kind is an infrastructure failure. Each side refuses the other's envelope
// of another version with a VersionError naming both versions. kdiag keeps
// the exec's standard input open until the answer is in: when it closes
// (kdiag cancelled the call or went away) the agent cancels the request, so
// a trace detaches and a command is killed; timeout_ms bounds it too.
//
// # Permissions
//
// Agent mode needs, in the agent namespace, pods create, get, list, patch
// (the heartbeat) and delete, and pods/exec create; and get on the target
// pod. builtins.Preflight checks them (Needs) before a run in agent mode.
// Auto mode checks nothing up front: on the pod's node it needs no more than
// local mode, and off the node a refusal is reported by the call with the
// Role rule to add.
package agent
