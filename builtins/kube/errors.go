package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kdiag/kdiag/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kube is the state shared by the built-ins of one Specs call.
type kube struct {
	clients Clients

	// planned remembers the debug container name a client-side plan chose
	// (the engine plans a write before asking for approval), so that the
	// approved call adds the container the approval showed.
	mu      sync.Mutex
	planned map[string]string

	// health says whether the API server stopped answering in this run.
	health health
}

// client returns the clientset, building it on first use.
func (k *kube) client(op string) (kubernetes.Interface, *rest.Config, error) {
	cs, rc, err := k.clients.Kube()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	return cs, rc, nil
}

// namespace returns the call's namespace argument or the default one.
func (k *kube) namespace(c *engine.Call) string {
	if ns := c.Args.String("namespace"); ns != "" {
		return ns
	}
	return k.clients.Namespace()
}

// apiError translates an error of a Kubernetes API request into a typed
// engine error whose message starts with op and names what was requested
// (e.g. `pod "default/x"`). need is the permission the request used; it is
// named in a Forbidden error together with the Role rule that grants it.
func apiError(op string, err error, what string, need Need) error {
	if err == nil {
		return nil
	}
	var ee *engine.Error
	if errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return engine.Wrapf(engine.KindTimeout, err, "%s: %s: timed out", op, what)
	case errors.Is(err, context.Canceled):
		return engine.Wrapf(engine.KindCancelled, err, "%s: %s: cancelled", op, what)
	case apierrors.IsNotFound(err):
		return engine.Wrapf(engine.KindNotFound, err, "%s: %s not found", op, what)
	case apierrors.IsForbidden(err):
		msg := fmt.Sprintf("%s: forbidden: %s", op, statusMessage(err))
		if need.Verb != "" {
			msg += "; add to a Role: " + need.roleRule()
		}
		return engine.Wrapf(engine.KindForbidden, err, "%s", msg)
	case apierrors.IsUnauthorized(err):
		return engine.Wrapf(engine.KindForbidden, err, "%s: unauthorized (the credentials of the kubeconfig were rejected): %s", op, statusMessage(err))
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return engine.Wrapf(engine.KindConflict, err, "%s: %s: %s", op, what, statusMessage(err))
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return engine.Wrapf(engine.KindTimeout, err, "%s: %s: %s", op, what, statusMessage(err))
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return engine.Wrapf(engine.KindInvalid, err, "%s: %s", op, statusMessage(err))
	case apierrors.IsTooManyRequests(err):
		return engine.Wrapf(engine.KindRefused, err, "%s: %s: %s", op, what, statusMessage(err))
	}
	return fmt.Errorf("%s: %s: %w", op, what, err)
}

// statusMessage returns the API server's own message, lower-cased at its
// first letter so that it reads on after "op: ".
func statusMessage(err error) string {
	msg := err.Error()
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		msg = se.Status().Message
	}
	return lowerFirst(msg)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	// Keep acronyms and identifiers ("HTTP", "Pod") only when the second
	// letter is upper case too.
	if len(s) > 1 && strings.ToUpper(s[1:2]) == s[1:2] && strings.ToLower(s[1:2]) != s[1:2] {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// objName renders "kind "ns/name"" or, cluster-scoped, "kind "name"".
func objName(kind, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %q", kind, namespace+"/"+name)
}
