package kube

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEscapeKey(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"config.toml", "config.toml"},
		{"a/b", "a~1b"},
		{"a~b", "a~0b"},
		{"~/", "~0~1"},
		{"~1", "~01"}, // must not turn into "/" when read back
	} {
		got := escapeKey(tc.key)
		if got != tc.want {
			t.Errorf("escapeKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
		mp, k, err := splitPath(keyPath("/data", tc.key))
		if err != nil || mp != "/data" || k != tc.key {
			t.Errorf("splitPath(keyPath(%q)) = %q, %q, %v", tc.key, mp, k, err)
		}
	}
	if _, _, err := splitPath("/spec/x"); err == nil {
		t.Error("splitPath accepted a path outside the ConfigMap's maps")
	}
}

func TestPlanPatchRemoveAndSet(t *testing.T) {
	before := cmMaps{"/data": {"config.toml": "[default]", "additional_file": "", "a/b": "1", "keep": "same"}}
	ops, after, err := planPatch(before, []string{"additional_file", "a/b"}, map[string]string{"config.toml": "[x]", "new": "v", "keep": "same"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []PatchOp{
		{Op: "test", Path: "/data/additional_file", Value: ""},
		{Op: "remove", Path: "/data/additional_file"},
		{Op: "test", Path: "/data/a~1b", Value: "1"},
		{Op: "remove", Path: "/data/a~1b"},
		{Op: "test", Path: "/data/config.toml", Value: "[default]"},
		{Op: "replace", Path: "/data/config.toml", Value: "[x]"},
		{Op: "add", Path: "/data/new", Value: "v"},
	}
	if d := cmp.Diff(want, ops); d != "" {
		t.Errorf("patch (-want +got):\n%s", d)
	}
	wantAfter := cmMaps{"/data": {"config.toml": "[x]", "new": "v", "keep": "same"}}
	if d := cmp.Diff(wantAfter, after); d != "" {
		t.Errorf("after (-want +got):\n%s", d)
	}
	// The patch's JSON keeps the empty old value of the test op.
	if s := string(mustJSON(ops[0])); s != `{"op":"test","path":"/data/additional_file","value":""}` {
		t.Errorf("test op JSON = %s", s)
	}

	inv := inversePatch(before, after)
	wantInv := []PatchOp{
		{Op: "add", Path: "/data/a~1b", Value: "1"},
		{Op: "add", Path: "/data/additional_file", Value: ""},
		{Op: "test", Path: "/data/config.toml", Value: "[x]"},
		{Op: "replace", Path: "/data/config.toml", Value: "[default]"},
		{Op: "test", Path: "/data/new", Value: "v"},
		{Op: "remove", Path: "/data/new"},
	}
	if d := cmp.Diff(wantInv, inv); d != "" {
		t.Errorf("inverse (-want +got):\n%s", d)
	}
	restored, err := after.apply(inv)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, restored); d != "" {
		t.Errorf("inverse does not restore (-before +restored):\n%s", d)
	}
	// The inverse refuses once a tested key changed.
	changed := after.clone()
	changed["/data"]["new"] = "edited"
	if _, err := changed.apply(inv); err == nil || !strings.Contains(err.Error(), "test of /data/new failed") {
		t.Errorf("inverse on a changed object: err = %v", err)
	}
}

func TestPlanPatchMissingKey(t *testing.T) {
	before := cmMaps{"/data": {"b": "2", "a": "1"}}
	_, _, err := planPatch(before, []string{"x"}, nil, nil)
	if err == nil || err.Error() != `has no key "x" (keys: a, b)` {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := planPatch(before, []string{"a"}, map[string]string{"a": "3"}, nil); err == nil {
		t.Error("a key both removed and set was accepted")
	}
}

func TestPlanPatchNoDataAndExtraOps(t *testing.T) {
	before := cmMaps{"/metadata/labels": {"app": "web"}}
	extra := []PatchOp{
		{Op: "replace", Path: "/metadata/labels/app", Value: "api"},
		{Op: "add", Path: "/metadata/annotations/kdiag~1touched", Value: "yes"},
	}
	ops, after, err := planPatch(before, nil, map[string]string{"k": "v"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	want := []PatchOp{
		{Op: "add", Path: "/data", Value: map[string]any{}},
		{Op: "add", Path: "/data/k", Value: "v"},
		{Op: "test", Path: "/metadata/labels/app", Value: "web"},
		{Op: "replace", Path: "/metadata/labels/app", Value: "api"},
		{Op: "add", Path: "/metadata/annotations", Value: map[string]any{}},
		{Op: "add", Path: "/metadata/annotations/kdiag~1touched", Value: "yes"},
	}
	if d := cmp.Diff(want, ops); d != "" {
		t.Errorf("patch (-want +got):\n%s", d)
	}
	inv := inversePatch(before, after)
	restored, err := after.apply(inv)
	if err != nil {
		t.Fatal(err)
	}
	// Maps that did not exist come back empty rather than absent.
	wantRestored := cmMaps{"/data": {}, "/metadata/labels": {"app": "web"}, "/metadata/annotations": {}}
	if d := cmp.Diff(wantRestored, restored); d != "" {
		t.Errorf("restored (-want +got):\n%s", d)
	}
	if _, _, err := planPatch(before, nil, nil, []PatchOp{{Op: "move", Path: "/data/x"}}); err == nil {
		t.Error("unsupported op accepted")
	}
	if _, _, err := planPatch(before, nil, nil, []PatchOp{{Op: "add", Path: "/spec/x", Value: "y"}}); err == nil {
		t.Error("path outside the maps accepted")
	}
}
