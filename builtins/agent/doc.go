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
// then deleted once the requests using it are done (see below for
// retries).
//
// # Transport and protocol
//
// Each agent pod carries one session at a time: one long-lived pods/exec
// (WebSocket, SPDY fallback, as kubectl exec) of `kdiag agent session` in
// the agent container, opened by the first request and used by every
// request after it, several at once. Frames are JSON, one per line, version
// 2; the agent opens with a hello, each call is a request frame with an ID
// on its standard input and the answer carries the ID on its standard
// output, in the order calls finish:
//
//	< {"v":2,"id":0,"hello":{"pid":31337}}
//	> {"v":2,"id":7,"op":"http_probe","timeout_ms":9950,"request":{...node.HTTPProbeRequest...}}
//	> {"v":2,"id":8,"op":"enter_ns","request":{...}}
//	< {"v":2,"id":8,"error":{"kind":"gone","message":"enter_ns: process 4242 does not exist"}}
//	< {"v":2,"id":7,"result":{...node.HTTPProbeResult...}}
//	> {"v":2,"id":9,"cancel":true}
//
// The agent serves each call with the operation's Linux implementation, the
// very code of local mode, so the result JSON is the same either way and
// the transcript does not say where a call ran (except for the agent's
// deletion among the run's cleanups). Expected failures keep their
// engine.Kind; an error without a kind is an infrastructure failure. Each
// side refuses the other's frames of another version with a VersionError
// naming both versions; an agent image of an older kdiag, without
// sessions, is named as such. A call whose context ends sends a cancel
// frame and waits (at most 5 s) for the agent to answer that it stopped,
// so a trace has detached and a command was killed; timeout_ms bounds a
// call too. A frame is at most transcript.MaxLineBytes (what a transcript
// line holds) either way: the agent answers an error instead of a larger
// result, and a reader refuses a larger frame and ends the session.
//
// When the run ends the session's standard input is closed: the agent
// cancels what is still in flight and exits, and the exec is waited for
// before the pod is deleted. When the stream breaks (the session process
// killed, the pod deleted, the connection lost), the calls in flight fail
// with an error naming the agent pod and its node, and the next call opens
// a new session (with a new agent pod if the pod went away). A call in
// flight is retried once on a new session only when its operation is
// repeatable (node.Op.Repeatable: a read, and not run, whose command may
// have changed things); a call that never reached the agent (its session
// could not open because the pod went away) is retried once with a new
// agent.
//
// # Permissions
//
// Agent mode needs, in the agent namespace, pods create, get, list, patch
// (the heartbeat) and delete, and pods/exec create; and get on the target
// pod. builtins.Preflight checks them (Needs) before a run in agent mode.
// Auto mode checks nothing up front: on the pod's node it needs no more than
// local mode, and off the node a refusal is reported by the call with the
// Role rule to add. Reading a node's kubelet configuration (its runtime
// endpoint) needs get on nodes/proxy, which is not required: without it
// the agent looks for the well-known sockets on the node, and a find_pid
// that then fails says that the configuration could not be read and which
// rule would allow it.
package agent
