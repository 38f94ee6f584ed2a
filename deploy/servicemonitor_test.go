package deploy_test

import (
	"bytes"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// TestServiceMonitor checks that the ServiceMonitor scrapes kdiag serve:
// it selects the Service's labels in its namespace, by the port's name,
// at /metrics.
func TestServiceMonitor(t *testing.T) {
	b, err := os.ReadFile("servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			NamespaceSelector struct {
				MatchNames []string `yaml:"matchNames"`
			} `yaml:"namespaceSelector"`
			Endpoints []struct {
				Port, Path, Interval string
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sm); err != nil {
		t.Fatalf("servicemonitor.yaml: %v", err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		t.Fatalf("servicemonitor.yaml is a %s %s", sm.APIVersion, sm.Kind)
	}
	var svc *corev1.Service
	for _, o := range objects(t) {
		if s, ok := o.(*corev1.Service); ok && s.Name == "kdiag" {
			svc = s
		}
	}
	if svc == nil {
		t.Fatal("no kdiag Service in the kustomization")
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the Service's labels %v", k, v, svc.Labels)
		}
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 || len(sm.Spec.NamespaceSelector.MatchNames) != 1 || sm.Spec.NamespaceSelector.MatchNames[0] != svc.Namespace || sm.Metadata.Namespace != svc.Namespace {
		t.Errorf("the ServiceMonitor does not select namespace %s: %+v", svc.Namespace, sm)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("endpoints %+v, want /metrics", sm.Spec.Endpoints)
	}
	found := false
	for _, p := range svc.Spec.Ports {
		found = found || p.Name == sm.Spec.Endpoints[0].Port
	}
	if !found {
		t.Errorf("port %q is not a port of the Service", sm.Spec.Endpoints[0].Port)
	}
}
