//go:build linux

package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/kdiag/kdiag/engine"
)

func init() {
	HTTPProbe.Linux = localHTTPProbe
	TCPProbe.Linux = localTCPProbe
}

// localHTTPProbe sends the request from the target's network namespace with the
// kubelet's transport settings.
func localHTTPProbe(ctx context.Context, req *HTTPProbeRequest) (*HTTPProbeResult, error) {
	d, err := openDialer("http_probe", req.Target)
	if err != nil {
		return nil, err
	}
	defer d.close()
	tr := &http.Transport{
		DialContext:        d.DialContext,
		Proxy:              nil,
		DisableKeepAlives:  true,
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, // the kubelet does not verify probe certificates
	}
	defer tr.CloseIdleConnections()
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	client := &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: kubeletRedirects}

	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	hreq, err := http.NewRequestWithContext(ctx, method, req.URL, nil)
	if err != nil {
		return nil, engine.Errorf(engine.KindInvalid, "http_probe: %v", err)
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	if _, ok := hreq.Header["User-Agent"]; !ok {
		hreq.Header.Set("User-Agent", KubeProbeUserAgent)
	}
	if v, ok := hreq.Header["Accept"]; !ok {
		hreq.Header.Set("Accept", "*/*")
	} else if len(v) == 0 || v[0] == "" {
		hreq.Header.Del("Accept")
	}
	hreq.Host = hreq.Header.Get("Host")

	res := &HTTPProbeResult{Headers: map[string]string{}, RequestHeaders: joinHeaders(hreq.Header)}
	if hreq.Host != "" {
		res.RequestHeaders["Host"] = hreq.Host
	}
	t0 := time.Now()
	resp, err := client.Do(hreq)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxProbeBody+1))
		resp.Body.Close()
		res.Status, res.Headers = resp.StatusCode, joinHeaders(resp.Header)
		res.BodyTruncated = len(body) > maxProbeBody
		body = body[:min(len(body), maxProbeBody)]
		res.Body = string(body)
		if !utf8.Valid(body) {
			res.Body = string([]rune(string(body)))
		}
	}
	res.LatencyMS = sinceMS(t0)
	res.Address, res.LocalAddress = d.address(), d.localAddress()
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("http_probe: %w", ctx.Err())
		}
		if je := (*joinError)(nil); errors.As(err, &je) {
			return nil, joinFailed("http_probe", d.pid, je)
		}
		res.Error, res.Detail = classifyNetError(err)
		return res, nil
	}
	res.OK = res.Status >= 200 && res.Status < 400
	if res.Status >= 300 && res.Status < 400 {
		res.Warning = "probe terminated redirects"
	}
	return res, nil
}

// kubeletRedirects follows redirects to the same host, at most 10, and
// stops (keeping the redirect response) at one to another host, like the
// kubelet's probes.
func kubeletRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// localTCPProbe connects from the target's network namespace and closes.
func localTCPProbe(ctx context.Context, req *TCPProbeRequest) (*TCPProbeResult, error) {
	if _, _, err := net.SplitHostPort(req.HostPort); err != nil {
		return nil, engine.Errorf(engine.KindInvalid, "tcp_probe: host_port %q is not host:port", req.HostPort)
	}
	d, err := openDialer("tcp_probe", req.Target)
	if err != nil {
		return nil, err
	}
	defer d.close()
	pctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	conn, err := d.DialContext(pctx, "tcp", req.HostPort)
	res := &TCPProbeResult{LatencyMS: sinceMS(t0), Address: d.address(), LocalAddress: d.localAddress()}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("tcp_probe: %w", ctx.Err())
		}
		if je := (*joinError)(nil); errors.As(err, &je) {
			return nil, joinFailed("tcp_probe", d.pid, je)
		}
		res.Error, res.Detail = classifyNetError(err)
		return res, nil
	}
	conn.Close()
	res.OK = true
	return res, nil
}

// openDialer returns a dialer for the target's network namespace, or the
// node's for a nil target.
func openDialer(builtin string, t *Target) (*nsDialer, error) {
	if t == nil {
		return &nsDialer{netns: -1}, nil
	}
	f, err := openNamespaces(builtin, t, []string{"net"})
	if err != nil {
		return nil, err
	}
	return &nsDialer{netns: f.fds["net"], pid: t.PID}, nil
}

func (d *nsDialer) close() {
	if d.netns >= 0 {
		syscall.Close(d.netns)
	}
}

// classifyNetError returns a short reason for a failed connection or
// request, and the full message.
func classifyNetError(err error) (reason, detail string) {
	detail = err.Error()
	var dnsErr *net.DNSError
	var tlsErr *tls.RecordHeaderError
	var uerr *url.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", detail
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return "timeout", detail
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset", detail
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host", detail
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", detail
	case errors.As(err, &dnsErr):
		return "no such host", detail
	case errors.As(err, &tlsErr):
		return "tls handshake failed", detail
	case errors.As(err, &uerr):
		return uerr.Err.Error(), detail
	}
	return detail, detail
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sinceMS(t0 time.Time) float64 {
	return float64(time.Since(t0).Microseconds()) / 1000
}
