// Package deploy_test checks the server's Kubernetes manifests: they
// decode strictly as Kubernetes objects, the shipped playbooks.yaml is a
// valid server config, and the ClusterRole grants every permission the
// shipped runbook's built-ins need.
package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"gopkg.in/yaml.v3"
)

var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{Yaml: true, Strict: true})

// objects decodes every manifest the kustomization lists.
func objects(t *testing.T) []runtime.Object {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil || yaml.Unmarshal(b, &k) != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var out []runtime.Object
	for _, f := range k.Resources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			obj, _, err := strict.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			out = append(out, obj)
		}
	}
	return out
}

func find[T runtime.Object](objs []runtime.Object, name string) T {
	var zero T
	for _, o := range objs {
		if v, ok := o.(T); ok && o.(interface{ GetName() string }).GetName() == name {
			return v
		}
	}
	return zero
}

// TestManifests decodes the manifests strictly and checks that they fit
// together: the Deployment runs kdiag serve with the ConfigMap's config,
// the Secret's token and the PVC, as the ServiceAccount the roles bind.
func TestManifests(t *testing.T) {
	objs := objects(t)
	d := find[*appsv1.Deployment](objs, "kdiag")
	cm := find[*corev1.ConfigMap](objs, "kdiag-playbooks")
	if d == nil || cm == nil || find[*corev1.Service](objs, "kdiag") == nil || find[*corev1.PersistentVolumeClaim](objs, "kdiag-runs") == nil {
		t.Fatal("missing the Deployment, ConfigMap, Service or PVC")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if d.Spec.Template.Spec.ServiceAccountName != "kdiag" || c.Args[0] != "serve" || !slices.Contains(c.Args, "/etc/kdiag/playbooks.yaml") {
		t.Errorf("deployment: service account %q, args %v", d.Spec.Template.Spec.ServiceAccountName, c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	cfg, err := playbook.Parse("configmap.yaml", []byte(cm.Data["playbooks.yaml"]))
	if err != nil {
		t.Fatalf("the shipped playbooks.yaml: %v", err)
	}
	if filepath.Dir(cfg.Auth.TokenFile) != mounts["secret"] || cfg.Store != mounts["runs"] {
		t.Errorf("token_file %s and store %s, want them under the mounts %v", cfg.Auth.TokenFile, cfg.Store, mounts)
	}
	crb := find[*rbacv1.ClusterRoleBinding](objs, "kdiag-playbooks")
	rb := find[*rbacv1.RoleBinding](objs, "kdiag-jobs")
	if crb == nil || rb == nil || crb.Subjects[0].Name != "kdiag" || rb.Subjects[0].Name != "kdiag" {
		t.Error("the roles are not bound to the kdiag ServiceAccount")
	}
	if fb := find[*rbacv1.ClusterRoleBinding](objs, "kdiag-fanout"); fb == nil || fb.Subjects[0].Name != "kdiag" || fb.RoleRef.Name != "kdiag-fanout" ||
		find[*rbacv1.ClusterRole](objs, "kdiag-fanout") == nil {
		t.Error("the fan-out role is not bound to the kdiag ServiceAccount")
	}

	// The config's routes resolve against the real built-ins and library.
	dir := t.TempDir()
	cfg.Auth.TokenFile = filepath.Join(dir, "token")
	os.WriteFile(cfg.Auth.TokenFile, []byte("x"), 0o600)
	srv, err := playbook.New(cfg, playbook.Options{Specs: builtins.All(builtins.Config{}), StoreDir: dir, Executor: job.New(cfg, nil)})
	if err != nil {
		t.Fatalf("the shipped playbooks.yaml: %v", err)
	}
	srv.Close()

	// The patch for node access decodes as a Deployment.
	patch, _ := os.ReadFile("node-access-patch.yaml")
	if _, _, err := strict.Decode(append([]byte("apiVersion: apps/v1\nkind: Deployment\n"), patch...), nil, nil); err != nil {
		t.Errorf("node-access-patch.yaml: %v", err)
	}
}

// TestClusterRoleCoversRunbook checks the ClusterRole against what the
// built-ins of readiness-probe-failing need, as the RBAC preflight asks.
func TestClusterRoleCoversRunbook(t *testing.T) {
	role := find[*rbacv1.ClusterRole](objects(t), "kdiag-playbooks")
	rb, err := engine.Describe("@kdiag//readiness-probe-failing.star", engine.Options{Specs: builtins.All(builtins.Config{}), Loader: (&playbook.Config{}).Loader(nil)})
	if err != nil {
		t.Fatal(err)
	}
	needs := []kube.Need{{Verb: "get", Resource: "configmaps"}, {Verb: "create", Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}}
	for _, eff := range []engine.Effect{engine.Read, engine.Write} {
		for _, b := range rb.Builtins[eff] {
			needs = append(needs, kube.Needs(b, "shop")...)
		}
	}
	if len(needs) < 10 {
		t.Fatalf("only %d needs: %v", len(needs), needs)
	}
	for _, n := range needs {
		res := n.Resource
		if n.Subresource != "" {
			res += "/" + n.Subresource
		}
		ok := false
		for _, r := range role.Rules {
			ok = ok || slices.Contains(r.APIGroups, n.Group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, n.Verb)
		}
		if !ok {
			t.Errorf("the ClusterRole does not grant %s %s (group %q)", n.Verb, res, n.Group)
		}
	}
}
