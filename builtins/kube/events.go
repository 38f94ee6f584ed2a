package kube

import (
	"context"
	"sort"
	"time"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Event is one event involving an object, as events returns it.
type Event struct {
	Type      string `json:"type"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Count     int32  `json:"count"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
	Source    string `json:"source"`
	// FieldPath names the part of the object, e.g. spec.containers{app}.
	FieldPath string `json:"field_path,omitempty"`

	last time.Time
}

// eventsBuiltin is events and the API permissions it needs.
var eventsBuiltin = builtin{
	spec:  (*kube).eventsSpec,
	needs: func(ns string) []Need { return []Need{{Verb: "list", Resource: "events", Namespace: ns}} },
}

func (k *kube) eventsSpec() *engine.Spec {
	return &engine.Spec{
		Name: "events",
		Doc: "events returns the events involving an object, oldest first. " +
			"Call it as events(kind, name) or with an object from get: events(pod).",
		Params: []engine.Param{
			{Name: "kind", Type: "any", Required: true, Doc: "kind of the object (pod, deploy...) or the object itself"},
			{Name: "name", Type: "string", Doc: "object name (omit when passing an object)"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the object's, else the client's namespace)"},
		},
		Result: "a list of events: type (Normal/Warning), reason, message, count, first_seen, last_seen (RFC 3339), " +
			"source (component, host), field_path (e.g. spec.containers{app})",
		Effect:  engine.Read,
		Timeout: apiReadTimeout,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			kind, name, ns := "", c.Args.String("name"), c.Args.String("namespace")
			switch v := c.Args["kind"].(type) {
			case string:
				kind = v
			case map[string]any:
				kind, _ = v["kind"].(string)
				md, _ := v["metadata"].(map[string]any)
				if name == "" {
					name, _ = md["name"].(string)
				}
				if ns == "" {
					ns, _ = md["namespace"].(string)
				}
			default:
				return nil, engine.Errorf(engine.KindInvalid, "events: want a kind and a name, or an object, got %s", engine.TypeName(v))
			}
			if kind == "" || name == "" {
				return nil, engine.Errorf(engine.KindInvalid, "events: want a kind and a name, or an object with kind and metadata.name")
			}
			ki, ok := lookupKind(kind)
			if !ok {
				return nil, engine.Errorf(engine.KindInvalid, "events: unknown kind %q (kinds: %s)", kind, kindNames())
			}
			if ns == "" && ki.namespaced {
				ns = k.clients.Namespace()
			}
			cs, _, err := k.client("events")
			if err != nil {
				return nil, err
			}
			return objectEvents(ctx, "events", cs, ki, ns, name)
		},
	}
}

// objectEvents lists the events of one object, oldest first. Events of a
// cluster-scoped object are searched in all namespaces.
func objectEvents(ctx context.Context, op string, cs kubernetes.Interface, ki kindInfo, ns, name string) ([]Event, error) {
	sel := fields.Set{"involvedObject.name": name, "involvedObject.kind": ki.kind}
	evNS := ""
	if ki.namespaced {
		sel["involvedObject.namespace"] = ns
		evNS = ns
	}
	list, err := cs.CoreV1().Events(evNS).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		return nil, apiError(op, err, "events of "+objName(ki.name, ns, name), Need{Verb: "list", Resource: "events", Namespace: evNS})
	}
	out := make([]Event, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, toEvent(&list.Items[i]))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].last.Before(out[j].last) })
	return out, nil
}

func toEvent(e *corev1.Event) Event {
	first := e.FirstTimestamp.Time
	if first.IsZero() {
		first = e.EventTime.Time
	}
	last := e.LastTimestamp.Time
	if e.Series != nil && last.IsZero() {
		last = e.Series.LastObservedTime.Time
	}
	if last.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil && count == 0 {
		count = e.Series.Count
	}
	if count == 0 {
		count = 1
	}
	src := e.Source.Component
	host := e.Source.Host
	if src == "" {
		src, host = e.ReportingController, e.ReportingInstance
	}
	if host != "" && host != src {
		src += ", " + host
	}
	return Event{
		Type: e.Type, Reason: e.Reason, Message: e.Message, Count: count,
		FirstSeen: rfc3339(first), LastSeen: rfc3339(last), Source: src,
		FieldPath: e.InvolvedObject.FieldPath, last: last,
	}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
