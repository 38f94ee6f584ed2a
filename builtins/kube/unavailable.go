package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
)

// Default deadlines of the built-ins that make plain API requests. The
// built-ins that wait (attach_ephemeral, exec, restart, wait_ready) have a
// timeout argument of their own. --request-timeout replaces these (see
// ApplyRequestTimeout) and a "timeout" argument overrides them per call.
const (
	apiReadTimeout  = 15 * time.Second
	logsTimeout     = 30 * time.Second
	apiWriteTimeout = 30 * time.Second
	// healthTimeout bounds the API server's /readyz check that tells a
	// sick API server from a sick kubelet.
	healthTimeout = 3 * time.Second
)

// idempotent are the built-ins whose requests are reads: a transient
// failure (connection refused or reset, 429, 503) is retried with
// backoff inside the call's deadline. Writes are never retried.
var idempotent = map[string]bool{"get": true, "list": true, "get_pod": true, "events": true, "logs": true, "pod_diagnosis": true}

// viaKubelet are the built-ins the API server serves by asking the
// kubelet of the pod's node (which may in turn wait on the runtime).
var viaKubelet = map[string]bool{"logs": true}

// apiRequests are the built-ins whose default deadline --request-timeout
// replaces.
var apiRequests = map[string]bool{"get": true, "list": true, "get_pod": true, "events": true, "logs": true, "pod_diagnosis": true, "patch_configmap": true}

// ApplyRequestTimeout makes d (kubectl's --request-timeout) the default
// deadline of the built-ins of specs that make plain API requests; d <= 0
// leaves their defaults.
func ApplyRequestTimeout(specs []*engine.Spec, d time.Duration) {
	if d <= 0 {
		return
	}
	for _, s := range specs {
		if apiRequests[s.Name] {
			s.Timeout = d
		}
	}
}

// health remembers that the API server stopped answering during this
// run, so that the next calls find out in a few seconds instead of
// waiting out their whole deadline.
type health struct {
	mu        sync.Mutex
	downSince time.Time
}

// guard wraps the implementation of s: idempotent reads retry transient
// failures, and a failure to get an answer becomes an "unavailable" error
// naming the component that did not answer (the API server, or the
// kubelet of the pod's node).
func (k *kube) guard(s *engine.Spec) *engine.Spec {
	run := s.Run
	s.Run = func(ctx context.Context, c *engine.Call) (any, error) {
		start := time.Now()
		if err := k.stillDown(ctx, s.Name); err != nil {
			return nil, err
		}
		backoff := 250 * time.Millisecond
		for attempt := 1; ; attempt++ {
			v, err := run(ctx, c)
			if err == nil {
				return v, nil
			}
			dl, ok := ctx.Deadline()
			if !idempotent[s.Name] || !transient(err) || ctx.Err() != nil || attempt == 5 || ok && time.Until(dl) < 2*backoff {
				return nil, k.unavailable(ctx, s.Name, c, err, time.Since(start))
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, k.unavailable(ctx, s.Name, c, err, time.Since(start))
			}
			backoff *= 2
		}
	}
	return s
}

// transient reports whether err is a failure a retry may not see again.
func transient(err error) bool {
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || kubeletDial(err) != "" ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) ||
		strings.Contains(err.Error(), "http2: client connection lost")
}

// NoAnswer reports whether err means the server did not answer: the
// call's deadline passed, or the connection failed or was lost.
func NoAnswer(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	var te *tls.CertificateVerificationError
	if errors.As(err, &te) {
		return false
	}
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) ||
		errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "http2: client connection lost") ||
		strings.Contains(err.Error(), "TLS handshake timeout")
}

// kubeletDial returns the API server's failure to connect to a kubelet
// ("dial tcp 10.0.0.5:10250: connect: connection refused") that err
// reports, or "": the API server answered, the kubelet did not.
func kubeletDial(err error) string {
	var se apierrors.APIStatus
	if err == nil || !errors.As(err, &se) {
		return ""
	}
	m := kubeletDialRE.FindString(se.Status().Message)
	return m
}

var kubeletDialRE = regexp.MustCompile(`dial tcp [^ "]+:\d+: (connect: (connection refused|no route to host|network is unreachable)|i/o timeout)`)

// unavailable returns err, or, when err means nobody answered, an
// unavailable error that names who: the API server (checked on /readyz),
// else for logs and exec the kubelet of the pod's node.
func (k *kube) unavailable(ctx context.Context, op string, c *engine.Call, err error, took time.Duration) error {
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return err
	}
	cs, rc, cerr := k.client(op)
	if cerr != nil {
		return err
	}
	took = took.Round(100 * time.Millisecond)
	if dial := kubeletDial(err); dial != "" && viaKubelet[op] {
		node := "?"
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthTimeout)
		defer cancel()
		if pod, gerr := cs.CoreV1().Pods(k.namespace(c)).Get(hctx, c.Args.String("pod"), metav1.GetOptions{}); gerr == nil && pod.Spec.NodeName != "" {
			node = pod.Spec.NodeName
		}
		return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server answers, but could not reach the kubelet on node %s (%s; retried for %s): the kubelet is down or restarting; on the node check systemctl status kubelet and its logs (node built-ins such as find_pid(container_id=...) still work without it)",
			op, node, dial, took)
	}
	if !NoAnswer(ctx, err) {
		return err
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthTimeout)
	defer cancel()
	// /readyz hangs on a storage that does not answer; /readyz/ping does
	// not touch it. Both are asked at once, within one healthTimeout.
	pinged := make(chan error, 1)
	go func() { pinged <- cs.Discovery().RESTClient().Get().AbsPath("/readyz/ping").Do(hctx).Error() }()
	if herr := k.readyz(hctx); herr != nil {
		k.markDown()
		if rerr := (*notReadyError)(nil); errors.As(herr, &rerr) && rerr.storage() {
			return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server at %s answers, but its storage does not: /readyz fails %s; nothing can be read or written until etcd answers: check etcd's health, disk latency and logs (etcdctl endpoint health), then the kube-apiserver's logs",
				op, rc.Host, strings.Join(rerr.failed, ", "))
		}
		if <-pinged == nil {
			return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server at %s answers, but its storage does not: the request and /readyz got no answer within %s while /readyz/ping did; nothing can be read or written until etcd answers: check etcd's health, disk latency and logs (etcdctl endpoint health), then the kube-apiserver's logs",
				op, rc.Host, took)
		}
		return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server at %s did not answer within %s (%s; /readyz: %s); check the control plane: kubectl get --raw /readyz, the kube-apiserver and etcd logs",
			op, rc.Host, took, Reason(err), Reason(herr))
	}
	if viaKubelet[op] {
		node := "?"
		if pod, gerr := cs.CoreV1().Pods(k.namespace(c)).Get(hctx, c.Args.String("pod"), metav1.GetOptions{}); gerr == nil && pod.Spec.NodeName != "" {
			node = pod.Spec.NodeName
		}
		return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server answers, but the kubelet on node %s did not serve %s within %s: the kubelet, or the container runtime it waits on, is not answering; on the node check systemctl status kubelet containerd and crictl ps (node built-ins such as find_pid(container_id=...) still work without them)",
			op, node, op, took)
	}
	return err
}

// readyz asks the API server whether it is ready; any HTTP answer but a
// 5xx means it is answering.
func (k *kube) readyz(ctx context.Context) error {
	cs, _, err := k.client("readyz")
	if err != nil {
		return err
	}
	return readyz(ctx, cs)
}

// StorageNotAnswering asks the API server's verbose /readyz within ctx,
// for an API server that answers /readyz/ping: it returns how the API
// server's storage (etcd) fails it ("/readyz fails etcd", or "/readyz got
// no answer within 3s" when it hangs on the storage), or "" when /readyz
// answers or fails for another reason.
func StorageNotAnswering(ctx context.Context, cs kubernetes.Interface) string {
	t0 := time.Now()
	err := readyz(ctx, cs)
	if rerr := (*notReadyError)(nil); errors.As(err, &rerr) {
		if rerr.storage() {
			return "/readyz fails " + strings.Join(rerr.failed, ", ")
		}
		return ""
	}
	if err != nil && NoAnswer(ctx, err) {
		return fmt.Sprintf("/readyz got no answer within %s", time.Since(t0).Round(100*time.Millisecond))
	}
	return ""
}

// readyz asks cs's API server whether it is ready (see kube.readyz).
func readyz(ctx context.Context, cs kubernetes.Interface) error {
	res := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Param("verbose", "").Do(ctx)
	var code int
	res.StatusCode(&code)
	if err := res.Error(); err != nil && (code == 0 || code >= 500) {
		if body, _ := res.Raw(); code != 0 && len(body) > 0 {
			if failed := failedChecks(body); len(failed) > 0 {
				return &notReadyError{err: err, failed: failed}
			}
		}
		return err
	}
	return nil
}

// notReadyError is an API server that answers /readyz with failed checks.
type notReadyError struct {
	err    error
	failed []string
}

func (e *notReadyError) Error() string {
	return "not ready: failed checks " + strings.Join(e.failed, ", ")
}

func (e *notReadyError) Unwrap() error { return e.err }

// storage says whether a failed check is etcd's.
func (e *notReadyError) storage() bool {
	return slices.ContainsFunc(e.failed, func(c string) bool { return strings.HasPrefix(c, "etcd") })
}

// failedChecks returns the names of the failed checks of a verbose
// /readyz answer ("[-]etcd failed: reason withheld"), at most 8.
func failedChecks(body []byte) []string {
	var failed []string
	for _, line := range strings.Split(string(body), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "[-]")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		name = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '/' || r == '_' {
				return r
			}
			return -1
		}, name)
		if name != "" && len(failed) < 8 {
			failed = append(failed, name)
		}
	}
	return failed
}

// stillDown fails fast when the API server was found not answering
// earlier in the run and still does not answer /readyz.
func (k *kube) stillDown(ctx context.Context, op string) error {
	k.health.mu.Lock()
	since := k.health.downSince
	k.health.mu.Unlock()
	if since.IsZero() {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	err := k.readyz(hctx)
	if err == nil {
		k.health.mu.Lock()
		k.health.downSince = time.Time{}
		k.health.mu.Unlock()
		return nil
	}
	_, rc, _ := k.client(op)
	host := "?"
	if rc != nil {
		host = rc.Host
	}
	return engine.Wrapf(engine.KindUnavailable, err, "%s: the API server at %s is still not answering (/readyz: %s; not answering since %s ago); not sent",
		op, host, Reason(err), time.Since(since).Round(time.Second))
}

func (k *kube) markDown() {
	k.health.mu.Lock()
	if k.health.downSince.IsZero() {
		k.health.downSince = time.Now()
	}
	k.health.mu.Unlock()
}

// Reason shortens a transport error to its last, most specific part.
func Reason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer before the deadline"
	case utilnet.IsConnectionRefused(err):
		return "connection refused"
	case utilnet.IsConnectionReset(err):
		return "connection reset"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	return msg
}
