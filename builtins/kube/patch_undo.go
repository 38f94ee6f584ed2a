package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/kdiag/kdiag/engine"
	corev1 "k8s.io/api/core/v1"
)

// UndoChange is what patch_configmap's undo will do, as the approval
// prompt shows it.
type UndoChange struct {
	Object string    `json:"object"`
	Patch  []PatchOp `json:"patch"`
}

// checkPatchUndo verifies a recorded patch_configmap mutation and derives
// its inverse from it rather than trusting the recorded one: the target,
// the before- and after-state and the call's arguments (when known) must
// name one ConfigMap; replaying the arguments on the before-state must
// give the recorded patch and after-state; and the recorded inverse must
// be the one derived. The derived inverse starts with a test of the
// recorded after-state's resourceVersion and tests every value it
// changes, so the API server refuses it if the object changed since.
func checkPatchUndo(m *engine.Mutation) (ns, name string, inverse []PatchOp, err error) {
	const op = "patch_configmap undo"
	tampered := func(format string, args ...any) error {
		return engine.Errorf(engine.KindInvalid, "%s: %s: %s; the transcript was altered, refusing to undo", op, m.Target, fmt.Sprintf(format, args...))
	}
	var before, after corev1.ConfigMap
	if err := json.Unmarshal(m.Before, &before); err != nil || before.Name == "" {
		return "", "", nil, engine.Errorf(engine.KindInvalid, "%s: %s: the recorded before-state names no configmap", op, m.Target)
	}
	if err := json.Unmarshal(m.After, &after); err != nil || after.Name == "" {
		return "", "", nil, engine.Errorf(engine.KindInvalid, "%s: %s: the recorded after-state names no configmap", op, m.Target)
	}
	ns, name = before.Namespace, before.Name
	if after.Namespace != ns || after.Name != name {
		return "", "", nil, tampered("the before-state names configmap %s/%s, the after-state %s/%s", ns, name, after.Namespace, after.Name)
	}
	if want := fmt.Sprintf("configmap %s/%s", ns, name); m.Target != want {
		return "", "", nil, tampered("the recorded target is not the object the states name (%s)", want)
	}
	if after.ResourceVersion == "" {
		return "", "", nil, tampered("the after-state has no resourceVersion")
	}
	var ops []PatchOp
	if err := json.Unmarshal(m.Patch, &ops); err != nil {
		return "", "", nil, tampered("the recorded patch is not a JSON patch: %v", err)
	}
	if m.Args != nil {
		if a := m.Args.String("name"); a != name {
			return "", "", nil, tampered("the call patched configmap %q, the states name %q", a, name)
		}
		if a := m.Args.String("namespace"); a != "" && a != ns {
			return "", "", nil, tampered("the call patched namespace %q, the states name %q", a, ns)
		}
		set := map[string]string{}
		for k, v := range m.Args.Map("set") {
			s, ok := v.(string)
			if !ok {
				return "", "", nil, tampered("set[%q] is not a string", k)
			}
			set[k] = s
		}
		var extra []PatchOp
		if m.Args.Has("json_patch") {
			if err := json.Unmarshal(mustJSON(m.Args["json_patch"]), &extra); err != nil {
				return "", "", nil, tampered("json_patch: %v", err)
			}
		}
		planned, _, err := planPatch(mapsOf(&before), m.Args.Strings("remove"), set, extra)
		if err != nil {
			return "", "", nil, tampered("the call's arguments do not apply to the before-state: %v", err)
		}
		if !bytes.Equal(mustJSON(planned), mustJSON(ops)) {
			return "", "", nil, tampered("the recorded patch is not the one the call's arguments make")
		}
	}
	want, err := mapsOf(&before).apply(ops)
	if err != nil {
		return "", "", nil, tampered("the recorded patch does not apply to the before-state: %v", err)
	}
	if got := mapsOf(&after); !reflect.DeepEqual(nonEmpty(want), nonEmpty(got)) {
		return "", "", nil, tampered("the after-state is not the before-state with the recorded patch applied")
	}
	inverse = append([]PatchOp{{Op: "test", Path: "/metadata/resourceVersion", Value: after.ResourceVersion}},
		inversePatch(mapsOf(&before), mapsOf(&after))...)
	if len(m.Inverse) > 0 && !bytes.Equal(compactJSON(m.Inverse), mustJSON(inverse)) {
		return "", "", nil, tampered("the recorded inverse is not the inverse of the change")
	}
	return ns, name, inverse, nil
}

// nonEmpty drops empty maps, which JSON may record as absent.
func nonEmpty(m cmMaps) cmMaps {
	out := cmMaps{}
	for k, v := range m {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}
