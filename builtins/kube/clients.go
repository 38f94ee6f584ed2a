// Package kube declares kdiag's Kubernetes built-ins: get, list, get_pod,
// events, logs, pod_diagnosis, attach_ephemeral, exec, patch_configmap,
// restart and wait_ready, plus an RBAC preflight (Preflight, Needs) that a
// runner can use to refuse a runbook before it starts instead of failing
// with a 403 half-way through.
//
// The built-ins reach the cluster through a Clients provider that builds
// its client lazily, on the first call that needs it, so that replaying a
// transcript never constructs one.
package kube

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kdiag/kdiag/engine"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultDebugImage is the image attach_ephemeral uses when neither its
// image argument nor the Clients (WithDebugImage; kdiag's command line:
// $KDIAG_DEBUG_IMAGE) name one: a public image with a pinned tag (the
// local test cluster imports its busybox under it).
const DefaultDebugImage = "busybox:1.36.1"

// Clients provides the Kubernetes client the built-ins use. Implementations
// must build the client lazily: Kube is called only by a built-in that is
// actually running against a cluster.
type Clients interface {
	// Kube returns the typed clientset and the REST config it was built
	// from (exec needs the config for its streaming connection).
	Kube() (kubernetes.Interface, *rest.Config, error)
	// Namespace returns the namespace used when a call names none.
	Namespace() string
}

// DebugImager is implemented by Clients that choose attach_ephemeral's
// default image (WithDebugImage).
type DebugImager interface {
	// DebugImage returns the default image of an ephemeral debug container.
	DebugImage() string
}

// NewClients returns Clients that load their configuration the way kubectl
// does: kubeconfig is an explicit file (empty: $KUBECONFIG, then
// ~/.kube/config, then the in-cluster service account), context overrides
// the current context and namespace the context's namespace. Nothing is
// read until a built-in first needs the cluster.
func NewClients(kubeconfig, context, namespace string) Clients {
	return NewClientsWithOverrides(kubeconfig, clientcmd.ConfigOverrides{CurrentContext: context, Context: clientcmdapi.Context{Namespace: namespace}})
}

// NewClientsWithOverrides is NewClients with kubectl's connection flags:
// overrides as clientcmd.BindOverrideFlags fills them (--context, --as,
// --as-group, --user, --cluster, --token, --server, --request-timeout,
// ...; Context.Namespace is -n).
func NewClientsWithOverrides(kubeconfig string, overrides clientcmd.ConfigOverrides) Clients {
	return &lazyClients{kubeconfig: kubeconfig, overrides: overrides, namespace: overrides.Context.Namespace}
}

// ErrNoConfiguration is wrapped by the error of Kube when there is no
// kubeconfig, no in-cluster service account and no --server.
var ErrNoConfiguration = errors.New("no kubeconfig")

type lazyClients struct {
	kubeconfig, namespace string
	overrides             clientcmd.ConfigOverrides

	cfgOnce sync.Once
	cc      clientcmd.ClientConfig

	nsOnce sync.Once
	ns     string

	kubeOnce sync.Once
	cs       kubernetes.Interface
	rc       *rest.Config
	err      error
}

func (l *lazyClients) clientConfig() clientcmd.ClientConfig {
	l.cfgOnce.Do(func() {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if l.kubeconfig != "" {
			rules.ExplicitPath = l.kubeconfig
		}
		overrides := l.overrides
		l.cc = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)
	})
	return l.cc
}

// Kube builds the clientset on first use and returns the same one after.
func (l *lazyClients) Kube() (kubernetes.Interface, *rest.Config, error) {
	l.kubeOnce.Do(func() {
		rc, err := l.clientConfig().ClientConfig()
		if clientcmd.IsEmptyConfig(err) {
			// clientcmd's own message suggests the legacy KUBERNETES_MASTER.
			l.err = &engine.UsageError{Err: fmt.Errorf("kubernetes client configuration: %w: none at %s, and not in a pod; give --kubeconfig, set $KUBECONFIG, or give --server (and --token)", ErrNoConfiguration, l.lookedAt())}
			return
		}
		if err != nil {
			l.err = fmt.Errorf("kubernetes client configuration: %w", err)
			return
		}
		rc = rest.CopyConfig(rc)
		rc.QPS, rc.Burst = 50, 100
		rc.UserAgent = "kdiag"
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			l.err = fmt.Errorf("kubernetes client: %w", err)
			return
		}
		l.cs, l.rc = cs, rc
	})
	return l.cs, l.rc, l.err
}

// lookedAt names the kubeconfig files that were looked for.
func (l *lazyClients) lookedAt() string {
	if l.kubeconfig != "" {
		return l.kubeconfig
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return strings.Join(rules.Precedence, ", ")
}

// Namespace returns the --namespace override, else the context's
// namespace, else "default".
func (l *lazyClients) Namespace() string {
	l.nsOnce.Do(func() {
		if l.namespace != "" {
			l.ns = l.namespace
			return
		}
		ns, _, err := l.clientConfig().Namespace()
		if err != nil || ns == "" {
			ns = "default"
		}
		l.ns = ns
	})
	return l.ns
}

// WithDebugImage returns c choosing image as attach_ephemeral's default
// image; an empty image leaves c as it is (DefaultDebugImage).
func WithDebugImage(c Clients, image string) Clients {
	if image == "" {
		return c
	}
	return debugImageClients{c, image}
}

type debugImageClients struct {
	Clients
	image string
}

// DebugImage implements DebugImager.
func (d debugImageClients) DebugImage() string { return d.image }

// StaticClients returns Clients around an already built clientset, for
// embedding kdiag in a program that has one (and for tests).
func StaticClients(cs kubernetes.Interface, rc *rest.Config, namespace string) Clients {
	if namespace == "" {
		namespace = "default"
	}
	return &staticClients{cs: cs, rc: rc, ns: namespace}
}

type staticClients struct {
	cs kubernetes.Interface
	rc *rest.Config
	ns string
}

func (s *staticClients) Kube() (kubernetes.Interface, *rest.Config, error) { return s.cs, s.rc, nil }
func (s *staticClients) Namespace() string                                 { return s.ns }

func debugImage(c Clients) string {
	if d, ok := c.(DebugImager); ok {
		return d.DebugImage()
	}
	return DefaultDebugImage
}

// ContextNamespace returns the namespace the kubeconfig's context (the
// current one, or context when set) names, "" when it names none or the
// kubeconfig cannot be read.
func ContextNamespace(kubeconfig, context string) string {
	l := &lazyClients{kubeconfig: kubeconfig, overrides: clientcmd.ConfigOverrides{CurrentContext: context}}
	raw, err := l.clientConfig().RawConfig()
	if err != nil {
		return ""
	}
	name := context
	if name == "" {
		name = raw.CurrentContext
	}
	if c := raw.Contexts[name]; c != nil {
		return c.Namespace
	}
	return ""
}
