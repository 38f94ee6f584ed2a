package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PatchResult is what patch_configmap returns.
type PatchResult struct {
	Applied         bool           `json:"applied"`
	DryRun          string         `json:"dry_run,omitempty"`
	Patch           []PatchOp      `json:"patch"`
	BeforeKeys      []string       `json:"before_keys"`
	AfterKeys       []string       `json:"after_keys"`
	ResourceVersion string         `json:"resource_version"`
	Object          map[string]any `json:"object"`
}

// patchConfigMapBuiltin is patch_configmap and the API permissions it needs.
var patchConfigMapBuiltin = builtin{
	spec: (*kube).patchConfigMapSpec,
	needs: func(ns string) []Need {
		return []Need{
			{Verb: "get", Resource: "configmaps", Namespace: ns},
			{Verb: "patch", Resource: "configmaps", Namespace: ns},
		}
	},
}

func (k *kube) patchConfigMapSpec() *engine.Spec {
	return &engine.Spec{
		Name: "patch_configmap",
		Doc: "patch_configmap removes and sets keys of a ConfigMap's data with a JSON patch (RFC 6902) " +
			"guarded by test ops of the old values; json_patch adds ops of your own on /data, /binaryData, " +
			"/metadata/labels or /metadata/annotations. The change is recorded with its inverse for kdiag undo, " +
			"which refuses when the ConfigMap changed since. Pods see the change only after the kubelet's next " +
			"sync (subPath mounts and environment variables never): restart them if needed.",
		Params: []engine.Param{
			{Name: "name", Type: "string", Required: true, Doc: "ConfigMap name"},
			{Name: "namespace", Type: "string", Doc: "namespace (default: the client's namespace)"},
			{Name: "remove", Type: "list", Doc: "data keys to remove"},
			{Name: "set", Type: "dict", Doc: "data keys to set, {key: value}"},
			{Name: "json_patch", Type: "list", Doc: "extra RFC 6902 ops, e.g. [{\"op\": \"add\", \"path\": \"/metadata/labels/x\", \"value\": \"y\"}]"},
		},
		Result: "applied: the change was made (false under --dry-run)\ndry_run: client or server under --dry-run\n" +
			"patch: the JSON patch sent (or planned)\nbefore_keys, after_keys: the data keys before and after\n" +
			"resource_version: the ConfigMap's resourceVersion after the change\nobject: the resulting ConfigMap",
		Effect:  engine.Write,
		Timeout: apiWriteTimeout,
		Plans:   true,
		Run:     k.runPatchConfigMap,
		Undo:    k.undoPatchConfigMap,
		CheckUndo: func(m *engine.Mutation) (any, error) {
			ns, name, inv, err := checkPatchUndo(m)
			if err != nil {
				return nil, err
			}
			return UndoChange{Object: objName("configmap", ns, name), Patch: inv}, nil
		},
	}
}

func (k *kube) runPatchConfigMap(ctx context.Context, c *engine.Call) (any, error) {
	const op = "patch_configmap"
	cs, _, err := k.client(op)
	if err != nil {
		return nil, err
	}
	ns, name := k.namespace(c), c.Args.String("name")
	ref := objName("configmap", ns, name)
	set := map[string]string{}
	for key, v := range c.Args.Map("set") {
		s, ok := v.(string)
		if !ok {
			return nil, engine.Errorf(engine.KindInvalid, "%s: set[%q] must be a string, got %s", op, key, engine.TypeName(v))
		}
		set[key] = s
	}
	var extra []PatchOp
	if c.Args.Has("json_patch") {
		b, _ := json.Marshal(c.Args["json_patch"])
		if err := json.Unmarshal(b, &extra); err != nil {
			return nil, engine.Errorf(engine.KindInvalid, "%s: json_patch: want a list of {op, path, value}: %v", op, err)
		}
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(op, err, ref, Need{Verb: "get", Resource: "configmaps", Namespace: ns})
	}
	before := mapsOf(cm)
	ops, after, err := planPatch(before, c.Args.Strings("remove"), set, extra)
	if err != nil {
		var mk *errMissingKey
		if errors.As(err, &mk) {
			return nil, engine.Errorf(engine.KindNotFound, "%s: configmap %q %s", op, ns+"/"+name, mk.Error())
		}
		return nil, engine.Errorf(engine.KindInvalid, "%s: %s: %v", op, ref, err)
	}
	res := &PatchResult{
		DryRun: string(c.DryRun), Patch: ops, BeforeKeys: sortedKeys(before["/data"]), AfterKeys: sortedKeys(after["/data"]),
		ResourceVersion: cm.ResourceVersion,
	}
	beforeJSON := cleanConfigMap(cm)
	if len(ops) == 0 {
		res.Patch, res.Object = []PatchOp{}, beforeJSON
		return res, nil // nothing to change, nothing to record
	}
	mut := engine.Mutation{Target: fmt.Sprintf("configmap %s/%s", ns, name), Before: mustJSON(beforeJSON), Patch: mustJSON(ops)}
	if c.DryRun == engine.DryRunClient {
		planned := cm.DeepCopy()
		setMaps(planned, after)
		res.Object = cleanConfigMap(planned)
		mut.After = mustJSON(res.Object)
		c.RecordMutation(mut)
		return res, nil
	}
	opts := metav1.PatchOptions{}
	if c.DryRun == engine.DryRunServer {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	updated, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.JSONPatchType, mustJSON(ops), opts)
	if err != nil {
		e := apiError(op, err, ref, Need{Verb: "patch", Resource: "configmaps", Namespace: ns})
		if engine.KindOf(e) == engine.KindInvalid && testFailed(err) {
			return nil, engine.Errorf(engine.KindConflict, "%s: %s changed while it was being patched (%s); run again", op, ref, statusMessage(err))
		}
		return nil, e
	}
	res.Object = cleanConfigMap(updated)
	res.ResourceVersion = updated.ResourceVersion
	res.AfterKeys = sortedKeys(updated.Data)
	res.Applied = c.DryRun == engine.DryRunNone
	mut.After, mut.Applied = mustJSON(res.Object), res.Applied
	if res.Applied {
		inv := append([]PatchOp{{Op: "test", Path: "/metadata/resourceVersion", Value: updated.ResourceVersion}},
			inversePatch(before, mapsOf(updated))...)
		mut.Inverse = mustJSON(inv)
	}
	c.RecordMutation(mut)
	return res, nil
}

// undoPatchConfigMap applies the inverse derived from a verified record
// (checkPatchUndo), refusing with KindConflict when the ConfigMap changed
// since the run.
func (k *kube) undoPatchConfigMap(ctx context.Context, m *engine.Mutation) error {
	const op = "patch_configmap undo"
	if !m.Applied {
		return nil // a dry run changed nothing
	}
	ns, name, inverse, err := checkPatchUndo(m)
	if err != nil {
		return err
	}
	cs, _, err := k.client(op)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.JSONPatchType, mustJSON(inverse), metav1.PatchOptions{})
	if err == nil {
		return nil
	}
	e := apiError(op, err, objName("configmap", ns, name), Need{Verb: "patch", Resource: "configmaps", Namespace: ns})
	switch engine.KindOf(e) {
	case engine.KindInvalid, engine.KindConflict:
		if engine.KindOf(e) == engine.KindInvalid && !testFailed(err) {
			return e
		}
		what := "it was modified"
		if cur, gerr := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); gerr == nil {
			what = changedSince(m.After, cur)
		}
		return engine.Errorf(engine.KindConflict, "%s: configmap %s/%s changed since the run (%s); refusing to undo", op, ns, name, what)
	case engine.KindNotFound:
		return engine.Errorf(engine.KindNotFound, "%s: configmap %s/%s no longer exists; refusing to undo", op, ns, name)
	}
	return e
}

// testFailed reports whether the API server rejected a JSON patch because
// it did not apply: one of its test ops failed, or a key it changes is
// gone. The API server answers that with a bare 422 (no causes, a generic
// message), unlike a validation error, which names the invalid field.
func testFailed(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	st := se.Status()
	if st.Code != 422 {
		return false
	}
	msg := strings.ToLower(st.Message)
	if strings.Contains(msg, "test failed") || strings.Contains(msg, "testing value") || strings.Contains(msg, "nonexistent") {
		return true
	}
	return (st.Details == nil || len(st.Details.Causes) == 0) && strings.HasPrefix(msg, "the server rejected our request")
}

// changedSince describes how cur differs from the recorded after-state.
func changedSince(afterJSON json.RawMessage, cur *corev1.ConfigMap) string {
	var after corev1.ConfigMap
	if err := json.Unmarshal(afterJSON, &after); err != nil {
		return "resourceVersion now " + cur.ResourceVersion
	}
	was, now := mapsOf(&after), mapsOf(cur)
	var diffs []string
	for _, mp := range cmMapPaths {
		keys := map[string]bool{}
		for k := range was[mp] {
			keys[k] = true
		}
		for k := range now[mp] {
			keys[k] = true
		}
		for _, k := range sortedKeys(boolKeys(keys)) {
			w, inW := was[mp][k]
			n, inN := now[mp][k]
			label := "key " + k
			if mp != "/data" {
				label = strings.TrimPrefix(mp, "/") + " key " + k
			}
			switch {
			case inW && !inN:
				diffs = append(diffs, label+" now absent")
			case !inW && inN:
				diffs = append(diffs, fmt.Sprintf("%s now %s, was absent", label, quoteShort(n)))
			case w != n:
				diffs = append(diffs, fmt.Sprintf("%s now %s, was %s", label, quoteShort(n), quoteShort(w)))
			}
		}
	}
	if len(diffs) == 0 {
		return fmt.Sprintf("resourceVersion now %s, was %s", cur.ResourceVersion, after.ResourceVersion)
	}
	return strings.Join(diffs, "; ")
}

func boolKeys(m map[string]bool) map[string]string {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = ""
	}
	return out
}

func quoteShort(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// mapsOf returns the string maps of a ConfigMap; binaryData values are
// compared as their base64 JSON form.
func mapsOf(cm *corev1.ConfigMap) cmMaps {
	m := cmMaps{"/data": cm.Data, "/metadata/labels": cm.Labels, "/metadata/annotations": cm.Annotations}
	if cm.BinaryData != nil {
		bd := map[string]string{}
		for k, v := range cm.BinaryData {
			var s string
			_ = json.Unmarshal(mustJSON(v), &s)
			bd[k] = s
		}
		m["/binaryData"] = bd
	}
	return m.clone()
}

// setMaps writes maps back into a ConfigMap (for client-side dry runs).
func setMaps(cm *corev1.ConfigMap, m cmMaps) {
	cm.Data, cm.Labels, cm.Annotations = m["/data"], m["/metadata/labels"], m["/metadata/annotations"]
	if bd, ok := m["/binaryData"]; ok {
		cm.BinaryData = map[string][]byte{}
		for k, v := range bd {
			var b []byte
			_ = json.Unmarshal(mustJSON(v), &b)
			cm.BinaryData[k] = b
		}
	}
}

// cleanConfigMap renders a ConfigMap as JSON without managedFields.
func cleanConfigMap(cm *corev1.ConfigMap) map[string]any {
	obj, _ := decodeObject(mustJSON(cm))
	ki, _ := lookupKind("configmap")
	cleanObject(obj, ki)
	return obj
}
