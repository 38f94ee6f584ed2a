package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestE2EAttachEphemeralThenExec(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "7777"))
	e.waitReady("web")

	// A client-side dry run plans without touching the pod.
	v, err := e.run("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "image_pull_policy": "Never"}, engine.DryRunClient)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.(*EphemeralResult); r.State != "planned" || r.Spec == nil || r.Spec.TargetContainerName != "app" {
		t.Errorf("dry run: %+v", r)
	}
	// So does a server-side one.
	if _, err := e.run("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "image_pull_policy": "Never"}, engine.DryRunServer); err != nil {
		t.Fatal(err)
	}
	pod, _ := e.cs.CoreV1().Pods(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if n := len(pod.Spec.EphemeralContainers); n != 0 {
		t.Fatalf("dry runs added %d ephemeral containers", n)
	}

	r := e.must("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "image_pull_policy": "Never"})
	name, _ := r["container"].(string)
	if !strings.HasPrefix(name, "kdiag-") || len(name) != len("kdiag-abcde") || r["state"] != "running" || r["target"] != "app" {
		t.Fatalf("attach_ephemeral = %v", r)
	}
	if note, _ := r["note"].(string); !strings.Contains(note, "pod "+e.ns+"/web now carries ephemeral container "+name) || !strings.Contains(note, "cannot be removed") {
		t.Errorf("note = %q", note)
	}

	// The debug container shares the target's process namespace.
	x := e.must("exec", engine.Args{"pod": "web", "container": name, "command": []any{"ps"}})
	if x["ok"] != true || !strings.Contains(x["stdout"].(string), "sleep 7777") {
		t.Errorf("ps in %s: %v", name, x)
	}

	// reuse=True returns it instead of adding another.
	again := e.must("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "reuse": true})
	if again["container"] != name || again["reused"] != true {
		t.Errorf("reuse: %v", again)
	}
	pod, _ = e.cs.CoreV1().Pods(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if n := len(pod.Spec.EphemeralContainers); n != 1 {
		t.Errorf("pod has %d ephemeral containers, want 1", n)
	}

	// Undo cannot remove it and says so.
	err = e.specs["attach_ephemeral"].Undo(context.Background(), &engine.Mutation{Target: "pod " + e.ns + "/web ephemeral container " + name, Applied: true})
	wantKind(t, err, engine.KindIrreversible, "attach_ephemeral undo:", "cannot be removed")
}

func TestE2EExec(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "3600"))
	e.waitReady("web")

	x := e.must("exec", engine.Args{"pod": "web", "command": []any{"sh", "-c", "echo out; echo err >&2; exit 7"}})
	if x["stdout"] != "out\n" || x["stderr"] != "err\n" || x["exit_code"] != 7.0 || x["ok"] != false || x["container"] != "app" {
		t.Errorf("exit 7: %v", x)
	}
	x = e.must("exec", engine.Args{"pod": "web", "command": []any{"cat"}, "stdin": "hello\n"})
	if x["stdout"] != "hello\n" || x["ok"] != true {
		t.Errorf("stdin: %v", x)
	}
	// Output beyond 1 MiB is cut, not buffered.
	x = e.must("exec", engine.Args{"pod": "web", "command": []any{"sh", "-c", "head -c 1200000 /dev/zero"}})
	if len(x["stdout"].(string)) != maxExecOutput || x["stdout_truncated"] != true {
		t.Errorf("large output: %d bytes, truncated %v", len(x["stdout"].(string)), x["stdout_truncated"])
	}

	_, err := e.run("exec", engine.Args{"pod": "web", "command": []any{"no-such-tool"}}, "")
	wantKind(t, err, engine.KindNotFound, `exec: cannot run "no-such-tool" in container "app"`)
	_, err = e.run("exec", engine.Args{"pod": "web", "container": "nope", "command": []any{"true"}}, "")
	wantKind(t, err, engine.KindNotFound, `exec: pod "`+e.ns+`/web" has no container "nope" (containers: app)`)
	_, err = e.run("exec", engine.Args{"pod": "nope", "command": []any{"true"}}, "")
	wantKind(t, err, engine.KindNotFound, `exec: pod "`+e.ns+`/nope" not found`)
	start := time.Now()
	_, err = e.run("exec", engine.Args{"pod": "web", "command": []any{"sleep", "20"}, "timeout": "1s"}, "")
	wantKind(t, err, engine.KindTimeout, "did not finish within 1s")
	if time.Since(start) > 10*time.Second {
		t.Errorf("timeout of 1s took %s", time.Since(start))
	}

	// The pod deleted while the command runs: gone, not an exit code.
	done := make(chan error, 1)
	go func() {
		_, err := e.run("exec", engine.Args{"pod": "web", "command": []any{"sleep", "60"}, "timeout": "90s"}, "")
		done <- err
	}()
	time.Sleep(2 * time.Second)
	e.kubectl("delete", "pod", "web", "--grace-period=0", "--force", "--wait=false")
	wantKind(t, <-done, engine.KindGone, `exec: pod "`+e.ns+`/web"`)
}

func TestE2EAttachEphemeralBadImageTimesOut(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "3600"))
	e.waitReady("web")
	start := time.Now()
	_, err := e.run("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "nonexistent:v0", "image_pull_policy": "Never", "timeout": "20s"}, "")
	wantKind(t, err, engine.KindTimeout, "attach_ephemeral: ephemeral container kdiag-", "is not running after 20s", "ErrImageNeverPull", "nonexistent:v0")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a 20s timeout took %s", d)
	}
	_, err = e.run("attach_ephemeral", engine.Args{"pod": "web", "target": "nope"}, "")
	wantKind(t, err, engine.KindNotFound, `attach_ephemeral: pod "`+e.ns+`/web" has no container "nope" (containers: app)`)
	_, err = e.run("attach_ephemeral", engine.Args{"pod": "web", "profile": "root"}, "")
	wantKind(t, err, engine.KindInvalid, `unknown profile "root"`)
}

// The API server refuses ephemeral containers in a new pod; restart of a
// bare pod therefore drops them, and the error is specific if it did not.
func TestE2EEphemeralContainersCannotBeSetOnCreate(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "3600"))
	e.waitReady("web")
	e.must("attach_ephemeral", engine.Args{"pod": "web", "target": "app", "image": "busybox-local:v1", "image_pull_policy": "Never"})
	pod, err := e.cs.CoreV1().Pods(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copyPod := recreatedPod(pod)
	copyPod.Name = "web-copy"
	copyPod.Spec.EphemeralContainers = pod.Spec.EphemeralContainers
	_, err = e.cs.CoreV1().Pods(e.ns).Create(context.Background(), copyPod, metav1.CreateOptions{})
	wantKind(t, apiError("restart", err, objName("pod", e.ns, "web-copy"), podNeed("create", "", e.ns)),
		engine.KindInvalid, "restart: pod \"web-copy\" is invalid", "cannot be set on create")

	// restart strips them and recreates the pod.
	r := e.must("restart", engine.Args{"name": "web"})
	if r["action"] != "recreated" || r["new_uid"] == r["old_uid"] || r["new_uid"] == "" {
		t.Fatalf("restart: %v", r)
	}
	now, err := e.cs.CoreV1().Pods(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || len(now.Spec.EphemeralContainers) != 0 || string(now.UID) != r["new_uid"] {
		t.Errorf("recreated pod: %v, %d ephemeral containers", err, len(now.Spec.EphemeralContainers))
	}
}
