package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Need is one permission a built-in uses: a verb on a resource (and
// subresource) of an API group, in a namespace ("" for cluster-scoped
// resources, or for the Clients' default namespace in Preflight).
type Need struct {
	Verb        string `json:"verb"`
	Group       string `json:"group,omitempty"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	// ClusterScoped marks a need on a cluster-scoped resource (nodes,
	// namespaces): it is checked without a namespace.
	ClusterScoped bool `json:"cluster_scoped,omitempty"`
}

func (n Need) resourceName() string {
	if n.Subresource != "" {
		return n.Resource + "/" + n.Subresource
	}
	return n.Resource
}

// roleRule renders the Role rule that grants n, in YAML flow style.
func (n Need) roleRule() string {
	return fmt.Sprintf("- apiGroups: [%q] resources: [%q] verbs: [%q]", n.Group, n.resourceName(), n.Verb)
}

func podNeed(verb, sub, ns string) Need {
	return Need{Verb: verb, Resource: "pods", Subresource: sub, Namespace: ns}
}

// Preflight checks each need with a SelfSubjectAccessReview and, when any
// is denied, returns one engine.KindForbidden error naming the current
// user, every denied permission and the Role rules that would grant them.
// Needs without a namespace are checked in c's default namespace. A
// review that fails transiently (connection refused or reset, 429, 503:
// an API server restarting) is asked again with backoff until ctx ends,
// as the read built-ins do: a review changes nothing.
func Preflight(ctx context.Context, c Clients, needs []Need) error {
	if len(needs) == 0 {
		return nil
	}
	cs, _, err := c.Kube()
	if err != nil {
		return fmt.Errorf("rbac: %w", err)
	}
	seen := map[Need]bool{}
	var denied []Need
	for _, n := range needs {
		if n.Namespace == "" && !n.ClusterScoped {
			n.Namespace = c.Namespace()
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		review := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: n.Namespace, Verb: n.Verb, Group: n.Group,
				Resource: n.Resource, Subresource: n.Subresource,
			},
		}}
		res, err := review1(ctx, cs, review)
		if err != nil {
			return apiError("rbac", err, "selfsubjectaccessreview", Need{})
		}
		if !res.Status.Allowed {
			denied = append(denied, n)
		}
	}
	if len(denied) == 0 {
		return nil
	}
	return engine.Errorf(engine.KindForbidden, "%s", deniedMessage(whoAmI(ctx, cs), denied))
}

// review1 sends one SelfSubjectAccessReview, again after a transient
// failure (backoff 250 ms doubling up to 2 s) while ctx lasts.
func review1(ctx context.Context, cs kubernetes.Interface, review *authzv1.SelfSubjectAccessReview) (*authzv1.SelfSubjectAccessReview, error) {
	backoff := 250 * time.Millisecond
	for {
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err == nil || !transient(err) || ctx.Err() != nil {
			return res, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < backoff {
			return res, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return res, err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// deniedMessage renders the preflight refusal.
func deniedMessage(user string, denied []Need) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rbac: the current user %q cannot ", user)
	cluster := false
	for i, n := range denied {
		if i > 0 {
			b.WriteString(", nor ")
		}
		fmt.Fprintf(&b, "%q %q", n.Verb, n.resourceName())
		if n.Namespace != "" {
			fmt.Fprintf(&b, " in namespace %q", n.Namespace)
		} else {
			b.WriteString(" cluster-wide")
			cluster = true
		}
	}
	role := "Role"
	if cluster {
		role = "ClusterRole"
	}
	fmt.Fprintf(&b, "; add to a %s:", role)
	for _, r := range mergeRules(denied) {
		b.WriteString(" ")
		b.WriteString(r)
	}
	return b.String()
}

// mergeRules groups denied needs by API group and resource, one Role rule
// each with all their verbs.
func mergeRules(denied []Need) []string {
	type key struct{ group, resource string }
	verbs := map[key][]string{}
	var order []key
	for _, n := range denied {
		k := key{n.Group, n.resourceName()}
		if _, ok := verbs[k]; !ok {
			order = append(order, k)
		}
		if !contains(verbs[k], n.Verb) {
			verbs[k] = append(verbs[k], n.Verb)
		}
	}
	var out []string
	for _, k := range order {
		vs := verbs[k]
		sort.Strings(vs)
		q := make([]string, len(vs))
		for i, v := range vs {
			q[i] = fmt.Sprintf("%q", v)
		}
		out = append(out, fmt.Sprintf("- apiGroups: [%q] resources: [%q] verbs: [%s]", k.group, k.resource, strings.Join(q, ", ")))
	}
	return out
}

// whoAmI returns the user name the API server sees, or "unknown".
func whoAmI(ctx context.Context, cs kubernetes.Interface) string {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r.Status.UserInfo.Username == "" {
		return "unknown"
	}
	return r.Status.UserInfo.Username
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
