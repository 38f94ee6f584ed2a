package node

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// KubeProbeUserAgent is the User-Agent the kubelet of Kubernetes 1.34 sends
// with its probes.
const KubeProbeUserAgent = "kube-probe/1.34"

// maxProbeBody caps the response body kept, as the kubelet does (10 KiB).
const maxProbeBody = 10 << 10

// HTTPProbeRequest asks for an HTTP request from a network namespace.
type HTTPProbeRequest struct {
	// Target is the process whose network namespace the request is sent
	// from; nil means the node's own.
	Target *Target `json:"target,omitempty"`
	// URL is the absolute http or https URL.
	URL string `json:"url"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Headers are extra request headers; Host sets the request's host.
	Headers map[string]string `json:"headers,omitempty"`
	// TimeoutMS bounds the whole request.
	TimeoutMS int64 `json:"timeout_ms"`
}

// HTTPProbeResult is a probe's outcome. Failing to connect is a result
// (OK false, Error set), not an error.
type HTTPProbeResult struct {
	// OK is what the kubelet would conclude: a response with status
	// 200 <= status < 400.
	OK bool `json:"ok"`
	// Status is the response's status code, 0 without a response.
	Status int `json:"status"`
	// Headers are the response headers, values joined with ", ",
	// secret-looking ones redacted.
	Headers map[string]string `json:"headers"`
	// Body is the start of the response body, at most 10 KiB.
	Body string `json:"body"`
	// BodyTruncated reports that Body was cut at 10 KiB.
	BodyTruncated bool `json:"body_truncated"`
	// LatencyMS is the time from the request to the end of the body.
	LatencyMS float64 `json:"latency_ms"`
	// Address is the address connected to (or last tried), ip:port.
	Address string `json:"address"`
	// LocalAddress is kdiag's end of the (first) connection, ip:port, as
	// the server sees its peer; "" without a connection.
	LocalAddress string `json:"local_address"`
	// Error is the short reason of a failure: "connection refused",
	// "timeout", "connection reset", "no route to host", "no such host"...
	Error string `json:"error"`
	// Detail is the full error message, as the kubelet would report it.
	Detail string `json:"detail"`
	// Warning is set when the kubelet would warn, e.g. "probe terminated
	// redirects" for a redirect to another host.
	Warning string `json:"warning"`
	// RequestHeaders are the headers sent, secret-looking ones redacted.
	RequestHeaders map[string]string `json:"request_headers"`
}

// TCPProbeRequest asks for a TCP connection from a network namespace.
type TCPProbeRequest struct {
	// Target is the process whose network namespace the connection is
	// made from; nil means the node's own.
	Target *Target `json:"target,omitempty"`
	// HostPort is the address, host:port.
	HostPort string `json:"host_port"`
	// TimeoutMS bounds the connection attempt.
	TimeoutMS int64 `json:"timeout_ms"`
}

// TCPProbeResult is a TCP probe's outcome.
type TCPProbeResult struct {
	// OK reports that the connection was established.
	OK bool `json:"ok"`
	// LatencyMS is the time to connect (or fail).
	LatencyMS float64 `json:"latency_ms"`
	// Address is the address connected to (or last tried), ip:port.
	Address string `json:"address"`
	// LocalAddress is kdiag's end of the connection, ip:port.
	LocalAddress string `json:"local_address"`
	// Error is the short reason of a failure, as in HTTPProbeResult.
	Error string `json:"error"`
	// Detail is the full error message.
	Detail string `json:"detail"`
}

// HTTPProbe is http_probe: an HTTP request from a network namespace.
var HTTPProbe = &Row[HTTPProbeRequest, HTTPProbeResult]{
	Builtin: "http_probe",
	Declare: httpProbeSpec,
	Target:  func(r *HTTPProbeRequest) int { return targetPID(r.Target) },
}

// TCPProbe is tcp_probe: a TCP connection from a network namespace.
var TCPProbe = &Row[TCPProbeRequest, TCPProbeResult]{
	Builtin: "tcp_probe",
	Declare: tcpProbeSpec,
	Target:  func(r *TCPProbeRequest) int { return targetPID(r.Target) },
}

// targetPID is the PID of an optional target (0: the node's own).
func targetPID(t *Target) int {
	if t == nil {
		return 0
	}
	return t.PID
}

func httpProbeSpec(send func(context.Context, *HTTPProbeRequest) (*HTTPProbeResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "http_probe",
		Doc: `http_probe sends an HTTP request from inside a process's network namespace, as the
kubelet's httpGet probe would: User-Agent kube-probe/1.34, Accept */*, no
proxy, TLS not verified, no keep-alive; redirects are followed to the same
host only (at most 10), a redirect elsewhere ends the probe with a warning.
ok is true iff a response came with 200 <= status < 400. Connection
failures are results (ok=False, error="connection refused", "timeout"...),
not errors. Without ns= or pid= the request leaves from the node's own
network namespace. Host names are resolved by the node's resolver; the
connection is made from inside the namespace. Authorization, Cookie and
other secret-looking header values are redacted in the result.`,
		Params: []engine.Param{
			{Name: "url", Type: "string", Required: true, Doc: "http:// or https:// URL, e.g. http://127.0.0.1:3000/readyz"},
			{Name: "ns", Type: "dict", Doc: "a handle from enter_ns that includes net"},
			{Name: "pid", Type: "int", Doc: "a process whose network namespace to use (instead of ns=)"},
			{Name: "method", Type: "string", Default: "GET", Doc: "HTTP method"},
			{Name: "headers", Type: "dict", Default: map[string]any{}, Doc: "extra request headers (Host sets the virtual host)"},
			{Name: "timeout", Type: "duration", Default: "1s", Doc: "the probe's timeout (the kubelet's default is 1s)"},
		},
		Result: `ok: the kubelet would count the probe as a success (200 <= status < 400)
status: HTTP status code, 0 without a response
headers: response headers, secret-looking values redacted
body: start of the response body (at most 10 KiB)
body_truncated: the body was cut at 10 KiB
latency_ms: time to the end of the body
address: ip:port connected to (or last tried)
error: short failure reason: connection refused, timeout, connection reset, no route to host, no such host
detail: the full error message
warning: what the kubelet would warn about (probe terminated redirects)
request_headers: headers sent, secret-looking values redacted`,
		Effect: engine.Read,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			t, err := netTargetArg("http_probe", c.Args)
			if err != nil {
				return nil, err
			}
			u, err := url.Parse(c.Args.String("url"))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, engine.Errorf(engine.KindInvalid, "http_probe: url %q is not an absolute http:// or https:// URL", c.Args.String("url"))
			}
			headers := map[string]string{}
			for k, v := range c.Args.Map("headers") {
				s, ok := v.(string)
				if !ok {
					return nil, engine.Errorf(engine.KindInvalid, "http_probe: header %q must be a string", k)
				}
				headers[k] = s
			}
			return send(ctx, &HTTPProbeRequest{
				Target:    t,
				URL:       u.String(),
				Method:    c.Args.String("method"),
				Headers:   headers,
				TimeoutMS: timeoutMS(c.Args, time.Second),
			})
		},
	}
}

func tcpProbeSpec(send func(context.Context, *TCPProbeRequest) (*TCPProbeResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "tcp_probe",
		Doc: `tcp_probe opens a TCP connection from inside a process's network namespace and
closes it, as the kubelet's tcpSocket probe would. Failing to connect is a
result (ok=False, error="connection refused", "timeout"...), not an error.
Without ns= or pid= the connection leaves from the node's own network
namespace.`,
		Params: []engine.Param{
			{Name: "host_port", Type: "string", Required: true, Doc: `address to connect to, e.g. "127.0.0.1:3000"`},
			{Name: "ns", Type: "dict", Doc: "a handle from enter_ns that includes net"},
			{Name: "pid", Type: "int", Doc: "a process whose network namespace to use (instead of ns=)"},
			{Name: "timeout", Type: "duration", Default: "1s", Doc: "the probe's timeout"},
		},
		Result: `ok: the connection was established
latency_ms: time to connect (or fail)
address: ip:port connected to (or last tried)
error: short failure reason: connection refused, timeout, no route to host, no such host
detail: the full error message`,
		Effect: engine.Read,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			t, err := netTargetArg("tcp_probe", c.Args)
			if err != nil {
				return nil, err
			}
			return send(ctx, &TCPProbeRequest{Target: t, HostPort: c.Args.String("host_port"), TimeoutMS: timeoutMS(c.Args, time.Second)})
		},
	}
}

// netTargetArg is targetArg for the probes: optional, and a handle must
// include the network namespace.
func netTargetArg(builtin string, a engine.Args) (*Target, error) {
	t, err := targetArg(builtin, a, false)
	if err != nil || t == nil {
		return t, err
	}
	if t.Handle != nil && !t.Handle.Has("net") {
		return nil, engine.Errorf(engine.KindInvalid, "%s: the ns= handle on process %d does not include the net namespace (it has %v)", builtin, t.PID, t.Handle.Namespaces)
	}
	return t, nil
}

func timeoutMS(a engine.Args, def time.Duration) int64 {
	d := a.Duration("timeout")
	if d <= 0 {
		d = def
	}
	return d.Milliseconds()
}

// joinHeaders flattens and redacts headers for a result.
func joinHeaders(h map[string][]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[k] = redactHeader(k, strings.Join(vs, ", "))
	}
	return out
}
