package kube

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recordingApprover approves everything and keeps what it was shown.
type recordingApprover struct{ seen []engine.Approval }

func (a *recordingApprover) Approve(_ context.Context, req engine.Approval) error {
	a.seen = append(a.seen, req)
	return nil
}

// tamper returns a copy of t whose patch_configmap call has its args and
// mutation record rewritten by edit (on their decoded JSON).
func tamper(t *testing.T, tr *transcript.Transcript, edit func(args, mut map[string]any)) *transcript.Transcript {
	t.Helper()
	out := &transcript.Transcript{Header: tr.Header, Footer: tr.Footer}
	for _, e := range tr.Events {
		if e.Type == transcript.TypeCall && e.Builtin == "patch_configmap" {
			c := *e
			var args, mut map[string]any
			if err := json.Unmarshal(e.Args, &args); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(e.Mutation, &mut); err != nil {
				t.Fatal(err)
			}
			edit(args, mut)
			c.Args, _ = json.Marshal(args)
			c.Mutation, _ = json.Marshal(mut)
			e = &c
		}
		out.Events = append(out.Events, e)
	}
	return out
}

// TestE2EUndoTamperedTranscript removes a key with patch_configmap on the
// real API server, then offers kdiag undo transcripts altered as an
// attacker would: before/after-state naming another ConfigMap, an inverse
// rewritten to add a key, call arguments naming another ConfigMap, a
// target naming another. Each is refused without touching either
// ConfigMap; the genuine transcript then undoes, and the approval prompt
// was shown the object and the exact, test-guarded change.
func TestE2EUndoTamperedTranscript(t *testing.T) {
	e := newE2E(t)
	e.apply(myconfig)
	e.apply(strings.ReplaceAll(myconfig, "name: myconfig", "name: other"))
	otherData := func() map[string]string {
		cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), "other", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data
	}
	orig := map[string]string{"config.toml": "[default]", "additional_file": ""}
	fixed := map[string]string{"config.toml": "[default]"}
	res := e.runbook(removeKey, map[string]any{"namespace": e.ns, "key": "additional_file"}, engine.DryRunNone)
	genuine := res.Transcript()
	rename := func(obj any, name string) {
		obj.(map[string]any)["metadata"].(map[string]any)["name"] = name
	}
	specs := Specs(e.clients)
	for _, c := range []struct {
		name string
		edit func(args, mut map[string]any)
	}{
		{"states name another configmap", func(_, mut map[string]any) {
			rename(mut["before"], "other")
			rename(mut["after"], "other")
			mut["inverse"] = []any{map[string]any{"op": "add", "path": "/data/additional_file", "value": ""}}
		}},
		{"before names another configmap", func(_, mut map[string]any) {
			rename(mut["before"], "other")
		}},
		{"inverse rewritten", func(_, mut map[string]any) {
			mut["inverse"] = []any{map[string]any{"op": "add", "path": "/data/planted", "value": "x"}}
		}},
		{"args name another configmap", func(args, _ map[string]any) {
			args["name"] = "other"
		}},
		{"target names another configmap", func(_, mut map[string]any) {
			mut["target"] = "configmap " + e.ns + "/other"
		}},
		{"patch rewritten", func(_, mut map[string]any) {
			mut["patch"] = []any{map[string]any{"op": "remove", "path": "/data/config.toml"}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := engine.Undo(context.Background(), tamper(t, genuine, c.edit), specs, &recordingApprover{})
			if err == nil || !strings.Contains(err.Error(), "altered") {
				t.Errorf("undo of a tampered transcript: %v, want a refusal saying it was altered", err)
			}
			if d := cmp.Diff(fixed, e.configData()); d != "" {
				t.Errorf("myconfig changed (-want +got):\n%s", d)
			}
			if d := cmp.Diff(orig, otherData()); d != "" {
				t.Errorf("other changed (-want +got):\n%s", d)
			}
		})
	}
	ap := &recordingApprover{}
	if _, err := engine.Undo(context.Background(), genuine, specs, ap); err != nil {
		t.Fatalf("undo of the genuine transcript: %v", err)
	}
	if d := cmp.Diff(orig, e.configData()); d != "" {
		t.Fatalf("after undo (-want +got):\n%s", d)
	}
	if len(ap.seen) != 1 || ap.seen[0].Target != "configmap "+e.ns+"/myconfig" {
		t.Fatalf("approvals %+v, want one naming configmap %s/myconfig", ap.seen, e.ns)
	}
	ch, ok := ap.seen[0].Plan.(UndoChange)
	if !ok || len(ch.Patch) < 2 || ch.Patch[0].Op != "test" || ch.Patch[0].Path != "/metadata/resourceVersion" ||
		ch.Patch[len(ch.Patch)-1] != (PatchOp{Op: "add", Path: "/data/additional_file", Value: ""}) {
		t.Errorf("the prompt was shown %#v, want the guarded inverse patch", ap.seen[0].Plan)
	}
}
