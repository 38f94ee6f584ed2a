package kube

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PatchOp is one RFC 6902 JSON patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// The string maps of a ConfigMap that patch_configmap edits, by their JSON
// pointer, in the order patches and inverses visit them.
var cmMapPaths = []string{"/data", "/binaryData", "/metadata/labels", "/metadata/annotations"}

// cmMaps holds those maps; an absent map is nil.
type cmMaps map[string]map[string]string

func (m cmMaps) clone() cmMaps {
	out := cmMaps{}
	for p, kv := range m {
		if kv == nil {
			continue
		}
		c := make(map[string]string, len(kv))
		for k, v := range kv {
			c[k] = v
		}
		out[p] = c
	}
	return out
}

// escapeKey escapes a map key as a JSON pointer token (RFC 6901).
func escapeKey(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func unescapeKey(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
}

// splitPath splits "/data/a~1b" into the map pointer "/data" and the key
// "a/b". A path naming a map itself returns an empty key.
func splitPath(path string) (mapPath, key string, err error) {
	for _, mp := range cmMapPaths {
		if path == mp {
			return mp, "", nil
		}
		if strings.HasPrefix(path, mp+"/") {
			return mp, unescapeKey(strings.TrimPrefix(path, mp+"/")), nil
		}
	}
	return "", "", fmt.Errorf("path %q is outside %s", path, strings.Join(cmMapPaths, ", "))
}

func keyPath(mapPath, key string) string { return mapPath + "/" + escapeKey(key) }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// errMissingKey reports a remove of a key the map does not have.
type errMissingKey struct {
	mapPath, key string
	keys         []string
}

func (e *errMissingKey) Error() string {
	what := "key"
	if e.mapPath != "/data" {
		what = strings.TrimPrefix(e.mapPath, "/") + " key"
	}
	return fmt.Sprintf("has no %s %q (keys: %s)", what, e.key, strings.Join(e.keys, ", "))
}

// apply applies ops to a copy of m. Only add, remove, replace and test of
// one string key of one of the maps (or add of a whole empty map) are
// supported.
func (m cmMaps) apply(ops []PatchOp) (cmMaps, error) {
	out := m.clone()
	for i, op := range ops {
		mp, key, err := splitPath(op.Path)
		if err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
		if key == "" {
			if op.Op != "add" {
				return nil, fmt.Errorf("op %d: %s of a whole map is not supported", i, op.Op)
			}
			vals, ok := op.Value.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("op %d: add %s wants an object", i, op.Path)
			}
			nm := map[string]string{}
			for k, v := range vals {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("op %d: value of %q is not a string", i, k)
				}
				nm[k] = s
			}
			out[mp] = nm
			continue
		}
		kv := out[mp]
		old, has := kv[key]
		val, isString := op.Value.(string)
		switch op.Op {
		case "add", "replace":
			if !isString {
				return nil, fmt.Errorf("op %d: %s %s wants a string value", i, op.Op, op.Path)
			}
			if kv == nil {
				return nil, fmt.Errorf("op %d: %s does not exist", i, mp)
			}
			if op.Op == "replace" && !has {
				return nil, &errMissingKey{mp, key, sortedKeys(kv)}
			}
			kv[key] = val
		case "remove":
			if !has {
				return nil, &errMissingKey{mp, key, sortedKeys(kv)}
			}
			delete(kv, key)
		case "test":
			if !has || !isString || old != val {
				return nil, fmt.Errorf("op %d: test of %s failed", i, op.Path)
			}
		default:
			return nil, fmt.Errorf("op %d: unsupported op %q (want add, remove, replace or test)", i, op.Op)
		}
	}
	return out, nil
}

// planPatch returns the guarded JSON patch that removes the keys remove and
// sets set in /data, followed by the user's extra ops, and the maps after
// it. Every change of an existing key is preceded by a test of its
// current value, so the patch fails if the object changed since it was read.
func planPatch(before cmMaps, remove []string, set map[string]string, extra []PatchOp) ([]PatchOp, cmMaps, error) {
	var ops []PatchOp
	data := before["/data"]
	for _, k := range remove {
		if _, dup := set[k]; dup {
			return nil, nil, fmt.Errorf("key %q is both removed and set", k)
		}
		old, ok := data[k]
		if !ok {
			return nil, nil, &errMissingKey{"/data", k, sortedKeys(data)}
		}
		p := keyPath("/data", k)
		ops = append(ops, PatchOp{Op: "test", Path: p, Value: old}, PatchOp{Op: "remove", Path: p})
	}
	if len(set) > 0 && data == nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/data", Value: map[string]any{}})
	}
	for _, k := range sortedKeys(set) {
		p := keyPath("/data", k)
		old, ok := data[k]
		switch {
		case !ok:
			ops = append(ops, PatchOp{Op: "add", Path: p, Value: set[k]})
		case old != set[k]:
			ops = append(ops, PatchOp{Op: "test", Path: p, Value: old}, PatchOp{Op: "replace", Path: p, Value: set[k]})
		}
	}
	// The user's ops: guard each change of an existing key as ours are.
	cur, err := before.apply(ops)
	if err != nil {
		return nil, nil, err
	}
	for _, op := range extra {
		mp, key, err := splitPath(op.Path)
		if err != nil {
			return nil, nil, err
		}
		if key != "" && cur[mp] == nil && op.Op == "add" {
			ext := []PatchOp{{Op: "add", Path: mp, Value: map[string]any{}}}
			ops = append(ops, ext...)
			cur, _ = cur.apply(ext)
		}
		if old, ok := cur[mp][key]; ok && key != "" && (op.Op == "remove" || op.Op == "replace" || op.Op == "add") {
			ops = append(ops, PatchOp{Op: "test", Path: op.Path, Value: old})
		}
		ops = append(ops, op)
		if cur, err = cur.apply([]PatchOp{op}); err != nil {
			return nil, nil, err
		}
	}
	return ops, cur, nil
}

// inversePatch returns the JSON patch that turns after back into before,
// each step guarded by a test of the value after holds, so that it fails
// when the object changed since.
func inversePatch(before, after cmMaps) []PatchOp {
	var ops []PatchOp
	for _, mp := range cmMapPaths {
		b, a := before[mp], after[mp]
		keys := map[string]bool{}
		for k := range b {
			keys[k] = true
		}
		for k := range a {
			keys[k] = true
		}
		sorted := slices.Sorted(maps.Keys(keys))
		if a == nil && len(b) > 0 {
			ops = append(ops, PatchOp{Op: "add", Path: mp, Value: map[string]any{}})
		}
		for _, k := range sorted {
			bv, inB := b[k]
			av, inA := a[k]
			p := keyPath(mp, k)
			switch {
			case inA && !inB:
				ops = append(ops, PatchOp{Op: "test", Path: p, Value: av}, PatchOp{Op: "remove", Path: p})
			case inB && !inA:
				ops = append(ops, PatchOp{Op: "add", Path: p, Value: bv})
			case av != bv:
				ops = append(ops, PatchOp{Op: "test", Path: p, Value: av}, PatchOp{Op: "replace", Path: p, Value: bv})
			}
		}
	}
	return ops
}
