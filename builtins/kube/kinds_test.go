package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookupKind(t *testing.T) {
	for in, want := range map[string]string{
		"pods": "pod", "po": "pod", "cm": "configmap", "ConfigMap": "configmap", "svc": "service",
		"deploy": "deployment", "rs": "replicaset", "sts": "statefulset", "ds": "daemonset",
		"jobs": "job", "nodes": "node", "ev": "event", "sa": "serviceaccount", "pvc": "pvc", "ns": "namespace",
		"hpa": "hpa", "HorizontalPodAutoscaler": "hpa", "pdb": "pdb", "netpol": "networkpolicy",
		"quota": "resourcequota", "vap": "validatingadmissionpolicy", "ValidatingWebhookConfiguration": "validatingwebhookconfiguration",
	} {
		k, ok := lookupKind(in)
		if !ok || k.name != want {
			t.Errorf("lookupKind(%q) = %q, %v; want %q", in, k.name, ok, want)
		}
	}
	if _, ok := lookupKind("widget"); ok {
		t.Error("lookupKind(widget) succeeded")
	}
}

func TestCleanObjectRedactsSecrets(t *testing.T) {
	secret, _ := lookupKind("secret")
	obj := map[string]any{
		"metadata": map[string]any{
			"name": "db", "managedFields": []any{map[string]any{"manager": "kubectl"}},
			"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"aHVudGVyMg=="}}`},
		},
		"data":       map[string]any{"password": "aHVudGVyMg==", "user": "YWRtaW4="},
		"stringData": map[string]any{"x": "y"},
	}
	cleanObject(obj, secret)
	want := map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{
			"name":        "db",
			"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": Redacted},
		},
		"data":       map[string]any{"password": Redacted, "user": Redacted},
		"stringData": map[string]any{"x": Redacted},
	}
	if d := cmp.Diff(want, obj); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestCleanObjectRedactsEnv(t *testing.T) {
	deploy, _ := lookupKind("deploy")
	obj := map[string]any{
		"kind": "Deployment", "apiVersion": "apps/v1",
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "app", "env": []any{
				map[string]any{"name": "DB_PASSWORD", "value": "hunter2"},
				map[string]any{"name": "API_TOKEN", "value": "abc"},
				map[string]any{"name": "LOG_LEVEL", "value": "debug"},
				map[string]any{"name": "SECRET_REF", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "db"}}},
			}},
		}}}},
	}
	cleanObject(obj, deploy)
	env := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"].([]any)
	got := map[string]any{}
	for _, e := range env {
		m := e.(map[string]any)
		got[m["name"].(string)] = m["value"]
	}
	want := map[string]any{"DB_PASSWORD": Redacted, "API_TOKEN": Redacted, "LOG_LEVEL": "debug", "SECRET_REF": nil}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestLowerFirst(t *testing.T) {
	for in, want := range map[string]string{
		`Pod "x" is invalid`: `pod "x" is invalid`,
		"HTTP probe failed":  "HTTP probe failed",
		"":                   "",
		"pods is forbidden":  "pods is forbidden",
	} {
		if got := lowerFirst(in); got != want {
			t.Errorf("lowerFirst(%q) = %q, want %q", in, got, want)
		}
	}
}
