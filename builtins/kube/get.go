package kube

import (
	"context"
	"fmt"

	"github.com/kdiag/kdiag/engine"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// maxListItems bounds what list returns; narrow with a selector beyond it.
const maxListItems = 5000

// getBuiltin is get and the API permissions it needs.
var getBuiltin = builtin{
	spec: (*kube).getSpec,
	// get needs "get" on the kind it is called with, which only the call
	// knows; a 403 at call time names the Role rule to add.
	perCall: true,
}

func (k *kube) getSpec() *engine.Spec {
	return &engine.Spec{
		Name: "get",
		Doc: "get returns one object as JSON, managedFields stripped and secrets redacted. " +
			"Kinds: " + kindNames() + " (plurals and kubectl short names work too).",
		Params: []engine.Param{
			{Name: "kind", Type: "string", Required: true, Doc: "kind of the object, e.g. pod, cm, deploy"},
			{Name: "name", Type: "string", Required: true, Doc: "object name"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace); ignored for cluster-scoped kinds"},
			{Name: "missing_ok", Type: "bool", Default: false, Doc: "return None instead of failing when the object does not exist"},
		},
		Result:  "the object as the API server returns it (apiVersion, kind, metadata, spec, status...)",
		Effect:  engine.Read,
		Timeout: apiReadTimeout,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			ki, ok := lookupKind(c.Args.String("kind"))
			if !ok {
				return nil, engine.Errorf(engine.KindInvalid, "get: unknown kind %q (kinds: %s)", c.Args.String("kind"), kindNames())
			}
			return k.getObject(ctx, "get", ki, k.namespace(c), c.Args.String("name"), c.Args.Bool("missing_ok"))
		},
	}
}

// getPodBuiltin is get_pod and the API permissions it needs.
var getPodBuiltin = builtin{
	spec:  (*kube).getPodSpec,
	needs: func(ns string) []Need { return []Need{podNeed("get", "", ns)} },
}

func (k *kube) getPodSpec() *engine.Spec {
	return &engine.Spec{
		Name: "get_pod",
		Doc:  "get_pod returns a pod as JSON, like get(\"pod\", name).",
		Params: []engine.Param{
			{Name: "name", Type: "string", Required: true, Doc: "pod name"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
			{Name: "missing_ok", Type: "bool", Default: false, Doc: "return None instead of failing when the pod does not exist"},
		},
		Result:  "the pod as the API server returns it (metadata, spec, status)",
		Effect:  engine.Read,
		Timeout: apiReadTimeout,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			ki, _ := lookupKind("pod")
			return k.getObject(ctx, "get_pod", ki, k.namespace(c), c.Args.String("name"), c.Args.Bool("missing_ok"))
		},
	}
}

// getObject fetches one object as cleaned JSON; a missing object is nil
// when missingOK.
func (k *kube) getObject(ctx context.Context, op string, ki kindInfo, ns, name string, missingOK bool) (any, error) {
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, engine.Errorf(engine.KindInvalid, "%s: empty %s name", op, ki.name)
	}
	if !ki.namespaced {
		ns = ""
	}
	raw, err := restFor(cs, ki).Get().NamespaceIfScoped(ns, ki.namespaced).Resource(ki.resource).Name(name).
		SetHeader("Accept", "application/json").Do(ctx).Raw()
	if err != nil {
		err = apiError(op, err, objName(ki.name, ns, name), Need{Verb: "get", Group: ki.group, Resource: ki.resource, Namespace: ns})
		if missingOK && engine.KindOf(err) == engine.KindNotFound {
			return nil, nil
		}
		return nil, err
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: decoding %s: %w", op, objName(ki.name, ns, name), err)
	}
	cleanObject(obj, ki)
	return obj, nil
}

// listBuiltin is list and the API permissions it needs.
var listBuiltin = builtin{
	spec: (*kube).listSpec,
	// list needs "list" on the kind it is called with (see get).
	perCall: true,
}

func (k *kube) listSpec() *engine.Spec {
	return &engine.Spec{
		Name: "list",
		Doc: "list returns the objects of a kind in a namespace (or all namespaces), " +
			"optionally filtered by label and field selectors, secrets redacted.",
		Params: []engine.Param{
			{Name: "kind", Type: "string", Required: true, Doc: "kind, e.g. pods, cm, deploy"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
			{Name: "selector", Type: "string", Doc: "label selector, e.g. app=web,tier!=db"},
			{Name: "field_selector", Type: "string", Doc: "field selector, e.g. status.phase=Running"},
			{Name: "all_namespaces", Type: "bool", Default: false, Doc: "list across all namespaces"},
		},
		Result:  "a list of objects, each with apiVersion and kind",
		Effect:  engine.Read,
		Timeout: apiReadTimeout,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			ki, ok := lookupKind(c.Args.String("kind"))
			if !ok {
				return nil, engine.Errorf(engine.KindInvalid, "list: unknown kind %q (kinds: %s)", c.Args.String("kind"), kindNames())
			}
			cs, _, err := k.client("list")
			if err != nil {
				return nil, err
			}
			ns := k.namespace(c)
			if c.Args.Bool("all_namespaces") || !ki.namespaced {
				ns = ""
			}
			return listObjects(ctx, cs, ki, ns, c.Args.String("selector"), c.Args.String("field_selector"))
		},
	}
}

// listObjects lists all pages of a kind, up to maxListItems.
func listObjects(ctx context.Context, cs kubernetes.Interface, ki kindInfo, ns, selector, fieldSelector string) ([]any, error) {
	what := ki.resource
	if ns != "" {
		what = fmt.Sprintf("%s in namespace %q", ki.resource, ns)
	}
	items := []any{}
	cont := ""
	for {
		opts := metav1.ListOptions{LabelSelector: selector, FieldSelector: fieldSelector, Limit: 500, Continue: cont}
		raw, err := restFor(cs, ki).Get().NamespaceIfScoped(ns, ki.namespaced && ns != "").Resource(ki.resource).
			SpecificallyVersionedParams(&opts, metav1.ParameterCodec, metav1.SchemeGroupVersion).
			SetHeader("Accept", "application/json").Do(ctx).Raw()
		if err != nil {
			return nil, apiError("list", err, what, Need{Verb: "list", Group: ki.group, Resource: ki.resource, Namespace: ns})
		}
		page, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("list: decoding %s: %w", what, err)
		}
		list, _ := page["items"].([]any)
		for _, it := range list {
			if obj, ok := it.(map[string]any); ok {
				cleanObject(obj, ki)
				items = append(items, obj)
			}
		}
		if len(items) > maxListItems {
			return nil, engine.Errorf(engine.KindInvalid, "list: more than %d %s; narrow the list with selector= or field_selector=", maxListItems, what)
		}
		md, _ := page["metadata"].(map[string]any)
		cont, _ = md["continue"].(string)
		if cont == "" {
			return items, nil
		}
	}
}
