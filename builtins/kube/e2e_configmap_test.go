package kube

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const myconfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: myconfig
data:
  config.toml: "[default]"
  additional_file: ""
`

// removeKey is the seed incident's fix as a runbook.
const removeKey = `
runbook(
    name = "remove-key",
    summary = "Removes a key from a ConfigMap.",
    params = [param("namespace"), param("key")],
)

def main(p):
    before = get("configmap", "myconfig", namespace = p.namespace)
    r = step("fix", lambda: patch_configmap("myconfig", namespace = p.namespace, remove = [p.key]))
    verdict("removed %s (applied=%s, keys %s -> %s)" % (p.key, r.applied, sorted(before.data), r.after_keys))
`

type approveAll struct{}

func (approveAll) Approve(context.Context, engine.Approval) error { return nil }

func (e *e2e) runbook(src string, params map[string]any, dry engine.DryRun) *engine.Result {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), "rb.star")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
	specs := Specs(e.clients)
	res := engine.Run(context.Background(), p, engine.Options{Specs: specs, Params: params, Approver: approveAll{}, DryRun: dry})
	if res.Err != nil {
		e.t.Fatalf("runbook: %v\n%s", res.Err, res.Backtrace)
	}
	return res
}

func verdictOf(res *engine.Result) string {
	v := ""
	for _, ev := range res.Events {
		if ev.Type == transcript.TypeVerdict {
			v = ev.Summary
		}
	}
	return v
}

func (e *e2e) configData() map[string]string {
	e.t.Helper()
	cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), "myconfig", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return cm.Data
}

func (e *e2e) undo(res *engine.Result) error {
	specs := Specs(e.clients)
	_, err := engine.Undo(context.Background(), res.Transcript(), specs, approveAll{})
	return err
}

func TestE2EPatchConfigMapUndo(t *testing.T) {
	e := newE2E(t)
	e.apply(myconfig)
	orig := map[string]string{"config.toml": "[default]", "additional_file": ""}
	params := map[string]any{"namespace": e.ns, "key": "additional_file"}

	// Dry runs change nothing.
	for _, dry := range []engine.DryRun{engine.DryRunClient, engine.DryRunServer} {
		res := e.runbook(removeKey, params, dry)
		if v := verdictOf(res); !strings.Contains(v, "applied=False") || !strings.Contains(v, `-> ["config.toml"]`) {
			t.Errorf("dry run %s: verdict %q", dry, v)
		}
		if d := cmp.Diff(orig, e.configData()); d != "" {
			t.Fatalf("dry run %s changed the ConfigMap (-want +got):\n%s", dry, d)
		}
	}

	res := e.runbook(removeKey, params, engine.DryRunNone)
	if v := verdictOf(res); !strings.Contains(v, "applied=True") {
		t.Errorf("verdict %q", v)
	}
	if d := cmp.Diff(map[string]string{"config.toml": "[default]"}, e.configData()); d != "" {
		t.Fatalf("after the fix (-want +got):\n%s", d)
	}
	if err := e.undo(res); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if d := cmp.Diff(orig, e.configData()); d != "" {
		t.Fatalf("after undo (-want +got):\n%s", d)
	}

	// Somebody edits the ConfigMap between the run and the undo: refused.
	res = e.runbook(removeKey, params, engine.DryRunNone)
	e.kubectl("patch", "configmap", "myconfig", "--type=merge", "-p", `{"data":{"config.toml":"[edited]"}}`)
	err := e.undo(res)
	wantKind(t, err, engine.KindConflict,
		"patch_configmap undo: configmap "+e.ns+"/myconfig changed since the run (key config.toml now \"[edited]\", was \"[default]\"); refusing to undo")
	if d := cmp.Diff(map[string]string{"config.toml": "[edited]"}, e.configData()); d != "" {
		t.Errorf("a refused undo changed the ConfigMap (-want +got):\n%s", d)
	}
}

func TestE2EPatchConfigMapErrors(t *testing.T) {
	e := newE2E(t)
	e.apply(myconfig)
	_, err := e.run("patch_configmap", engine.Args{"name": "myconfig", "remove": []any{"x"}}, "")
	wantKind(t, err, engine.KindNotFound, `patch_configmap: configmap "`+e.ns+`/myconfig" has no key "x" (keys: additional_file, config.toml)`)
	_, err = e.run("patch_configmap", engine.Args{"name": "nope", "remove": []any{"x"}}, "")
	wantKind(t, err, engine.KindNotFound, `patch_configmap: configmap "`+e.ns+`/nope" not found`)
	_, err = e.run("patch_configmap", engine.Args{"name": "myconfig", "set": map[string]any{"bad key!": "v"}}, "")
	wantKind(t, err, engine.KindInvalid, "patch_configmap:", "bad key!")

	// Keys with "/" and "~" are escaped in the patch and restored by the inverse.
	v, err := e.run("patch_configmap", engine.Args{"name": "myconfig", "set": map[string]any{"a.b": "1"},
		"json_patch": []any{map[string]any{"op": "add", "path": "/metadata/labels/example.com~1fixed", "value": "yes"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	r := v.(*PatchResult)
	if !r.Applied || !cmp.Equal(r.AfterKeys, []string{"a.b", "additional_file", "config.toml"}) {
		t.Errorf("result %+v", r)
	}
	cm, _ := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), "myconfig", metav1.GetOptions{})
	if cm.Labels["example.com/fixed"] != "yes" || cm.Data["a.b"] != "1" {
		t.Errorf("labels %v data %v", cm.Labels, cm.Data)
	}
}
