package cri

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kdiag/kdiag/engine"
)

// criClient is a connection to a runtime's CRI RuntimeService.
type criClient struct {
	runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
	ep   *criEndpoint

	mu      sync.Mutex
	dialErr error // the last error dialing the socket, to explain RPC failures
}

// criDial connects to the endpoint's unix socket. The connection is made
// by the first RPC; its errors are explained by criClient.fail.
func criDial(ep *criEndpoint) (*criClient, error) {
	c := &criClient{ep: ep}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", ep.Socket)
		c.mu.Lock()
		c.dialErr = err
		c.mu.Unlock()
		return conn, err
	}
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, err
	}
	c.conn = conn
	c.RuntimeServiceClient = runtimeapi.NewRuntimeServiceClient(conn)
	return c, nil
}

// Close closes the connection.
func (c *criClient) Close() error { return c.conn.Close() }

// fail turns an RPC error into a find_pid error of the right kind: a
// socket that is missing or forbids the connection, a runtime that does
// not listen on it or does not answer in time (unavailable), or the
// runtime's own status code.
func (c *criClient) fail(ctx context.Context, op string, err error) error {
	c.mu.Lock()
	dialErr := c.dialErr
	c.mu.Unlock()
	where := "CRI endpoint " + c.ep.Endpoint + " (from " + c.ep.Source + ")"
	switch {
	case dialErr != nil && errors.Is(dialErr, syscall.ENOENT):
		return engine.Errorf(engine.KindNotFound, "find_pid: %s: no such socket; is the container runtime running on this node?", where)
	case dialErr != nil && (errors.Is(dialErr, syscall.EACCES) || errors.Is(dialErr, syscall.EPERM)):
		return engine.Errorf(engine.KindForbidden, "find_pid: %s: permission denied on the socket (run kdiag as root on the node)", where)
	case dialErr != nil && errors.Is(dialErr, syscall.ECONNREFUSED):
		// A runtime that was killed or is restarting: as unavailable as a
		// hung one, and /proc still works without it.
		return engine.Wrapf(engine.KindUnavailable, dialErr, "find_pid: the container runtime at %s is not answering: connection refused (stale socket: the runtime is not listening; it is down or restarting): on the node check systemctl status containerd, crictl info; find_pid(container_id=...) finds a running container through /proc/*/cgroup without it", where)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		return engine.Wrapf(engine.KindUnavailable, err, "find_pid: the container runtime at %s did not answer %s in time: it may be hung (on the node: systemctl status containerd, crictl info); find_pid(container_id=...) finds a running container through /proc/*/cgroup without it", where, op)
	case ctx.Err() != nil:
		return engine.Errorf(engine.KindCancelled, "find_pid: %s: %s: %v", where, op, ctx.Err())
	}
	st, _ := status.FromError(err)
	msg := "find_pid: " + where + ": " + op + ": " + st.Message()
	switch st.Code() {
	case codes.NotFound:
		return engine.Errorf(engine.KindNotFound, "%s", msg)
	case codes.PermissionDenied, codes.Unauthenticated:
		return engine.Errorf(engine.KindForbidden, "%s", msg)
	case codes.DeadlineExceeded:
		return engine.Errorf(engine.KindTimeout, "%s", msg)
	case codes.Unavailable:
		return engine.Errorf(engine.KindRefused, "%s", msg)
	case codes.Unimplemented:
		return engine.Errorf(engine.KindInvalid, "%s (the runtime does not serve CRI runtime.v1)", msg)
	}
	return errors.New(msg)
}
