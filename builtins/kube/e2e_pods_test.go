package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

const crasher = `apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox-local:v1
    imagePullPolicy: Never
    command: ["sh", "-c", "echo boom; exit 3"]
`

func TestE2ECrashLoopDiagnosis(t *testing.T) {
	e := newE2E(t)
	e.apply(crasher)
	var d map[string]any
	e.eventually(120*time.Second, "a restart with a last termination", func() error {
		d = e.must("pod_diagnosis", engine.Args{"pod": "crash"})
		c := d["containers"].([]any)[0].(map[string]any)
		if c["restarts"].(float64) < 1 || c["last_termination"] == nil {
			return fmt.Errorf("container %v", c)
		}
		return nil
	})
	c := d["containers"].([]any)[0].(map[string]any)
	lt := c["last_termination"].(map[string]any)
	if lt["exit_code"] != 3.0 || lt["reason"] != "Error" || lt["finished_at"] == "" {
		t.Errorf("last_termination %v", lt)
	}
	// A new instance is ready for the moment it runs before it exits again.
	if d["ready"] != "0/1" && c["state"] != "running" {
		t.Errorf("ready %v with the container %v", d["ready"], c["state"])
	}
	found := false
	for _, p := range d["problems"].([]any) {
		if strings.Contains(p.(string), `container "app" has restarted`) && strings.Contains(p.(string), "Error (exit code 3)") {
			found = true
		}
	}
	if !found {
		t.Errorf("problems %v", d["problems"])
	}

	// Whether the previous instance's log is still there or (while the
	// current instance is terminated too) gone, the crash's output is found.
	l := e.must("logs", engine.Args{"pod": "crash", "previous": true})
	if l["text"] != "boom\n" || l["lines"] != 1.0 || l["truncated"] != false {
		t.Errorf("logs --previous: %v", l)
	}
	if note, ok := l["note"].(string); ok && !strings.Contains(note, "exit code 3") {
		t.Errorf("logs --previous note: %q", note)
	}
	if l := e.must("logs", engine.Args{"pod": "crash", "tail": int64(1)}); l["text"] != "boom\n" {
		t.Errorf("logs: %v", l)
	}

	evs, err := e.run("events", engine.Args{"kind": "pod", "name": "crash"}, "")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	last := ""
	for _, ev := range evs.([]Event) {
		reasons[ev.Reason] = true
		if ev.LastSeen < last {
			t.Errorf("events not sorted by time: %s after %s", ev.LastSeen, last)
		}
		last = ev.LastSeen
		if ev.Source == "" || ev.Count < 1 {
			t.Errorf("event %+v", ev)
		}
	}
	if !reasons["Scheduled"] || !reasons["Started"] {
		t.Errorf("event reasons %v", reasons)
	}
	// events(object) works on what get returns.
	pod := e.must("get", engine.Args{"kind": "pods", "name": "crash"})
	evs2, err := e.run("events", engine.Args{"kind": pod}, "")
	if err != nil || len(evs2.([]Event)) < len(evs.([]Event)) {
		t.Errorf("events(pod): %v, %d events", err, len(evs2.([]Event)))
	}
}

const probed = `apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: httpserver-local:v1
    imagePullPolicy: Never
    ports:
    - {name: http, containerPort: 8080}
    - {name: admin, containerPort: 9999}
    readinessProbe:
      httpGet: {path: /ready, port: admin}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 5
    volumeMounts:
    - {name: config, mountPath: /etc/app, readOnly: true}
    - {name: extra, mountPath: /etc/extra/file.toml, subPath: config.toml}
  volumes:
  - name: config
    configMap:
      name: myconfig
      items: [{key: config.toml, path: app.toml}]
  - name: extra
    configMap: {name: myconfig}
`

func TestE2EReadinessProbeDiagnosis(t *testing.T) {
	e := newE2E(t)
	e.apply(myconfig)
	e.apply(probed)
	var d map[string]any
	e.eventually(90*time.Second, "a readiness probe failure", func() error {
		d = e.must("pod_diagnosis", engine.Args{"pod": "probed"})
		if len(d["probe_failures"].([]any)) == 0 {
			return fmt.Errorf("no probe failures yet (phase %v)", d["phase"])
		}
		return nil
	})
	c := d["containers"].([]any)[0].(map[string]any)
	rp := c["readiness_probe"].(map[string]any)
	if rp["type"] != "http" || rp["port"] != 9999.0 || rp["port_name"] != "admin" || rp["path"] != "/ready" || rp["period"] != 1.0 {
		t.Errorf("readiness_probe %v", rp)
	}
	if lp := c["liveness_probe"].(map[string]any); lp["port"] != 8080.0 {
		t.Errorf("liveness_probe %v", lp)
	}
	mounts := c["volume_mounts"].([]any)
	m0, m1 := mounts[0].(map[string]any), mounts[1].(map[string]any)
	src := m0["source"].(map[string]any)
	if m0["mount_path"] != "/etc/app" || m0["read_only"] != true || src["kind"] != "configmap" || src["name"] != "myconfig" ||
		src["items"].([]any)[0].(map[string]any)["path"] != "app.toml" {
		t.Errorf("mount 0 %v", m0)
	}
	if m1["sub_path"] != "config.toml" {
		t.Errorf("mount 1 %v", m1)
	}
	f := d["probe_failures"].([]any)[0].(map[string]any)
	if f["container"] != "app" || f["probe"] != "readiness" || !strings.Contains(f["message"].(string), "9999") {
		t.Errorf("probe failure %v", f)
	}
	joined := fmt.Sprint(d["problems"])
	if !strings.Contains(joined, `readiness probe of container "app" failing`) || !strings.Contains(joined, `container "app" is running but not ready`) {
		t.Errorf("problems %v", d["problems"])
	}

	// wait_ready runs out of time as a value.
	w := e.must("wait_ready", engine.Args{"pod": "probed", "timeout": "2s"})
	if w["ready"] != false || !strings.Contains(w["reason"].(string), "timed out after 2s: pod probed not ready") {
		t.Errorf("wait_ready %v", w)
	}
	w = e.must("wait_ready", engine.Args{"selector": "app=none", "timeout": "1s"})
	if w["ready"] != false || w["reason"] != `timed out after 1s: no pods matching "app=none"` {
		t.Errorf("wait_ready (no pods) %v", w)
	}
}

func TestE2EGetListSecrets(t *testing.T) {
	e := newE2E(t)
	e.kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2")
	e.apply(sleeper("web", "3600"))
	s := e.must("get", engine.Args{"kind": "secret", "name": "db"})
	if s["data"].(map[string]any)["password"] != Redacted || s["kind"] != "Secret" {
		t.Errorf("secret %v", s)
	}
	if _, ok := s["metadata"].(map[string]any)["managedFields"]; ok {
		t.Error("managedFields not stripped")
	}
	_, err := e.run("get", engine.Args{"kind": "pod", "name": "x"}, "")
	wantKind(t, err, engine.KindNotFound)
	if err.Error() != `get: pod "`+e.ns+`/x" not found` {
		t.Errorf("err = %v", err)
	}
	if v, err := e.run("get", engine.Args{"kind": "pod", "name": "x", "missing_ok": true}, ""); v != nil || err != nil {
		t.Errorf("missing_ok: %v, %v", v, err)
	}
	_, err = e.run("get", engine.Args{"kind": "widget", "name": "x"}, "")
	wantKind(t, err, engine.KindInvalid, `get: unknown kind "widget"`)
	n := e.must("get", engine.Args{"kind": "node", "name": e.env.NodeName})
	if n["kind"] != "Node" {
		t.Errorf("node %v", n["kind"])
	}

	v, err := e.run("list", engine.Args{"kind": "pods", "selector": "app=web"}, "")
	if err != nil {
		t.Fatal(err)
	}
	items := asJSON(t, v).([]any)
	if len(items) != 1 || items[0].(map[string]any)["metadata"].(map[string]any)["name"] != "web" || items[0].(map[string]any)["kind"] != "Pod" {
		t.Errorf("list: %v", items)
	}
	v, _ = e.run("list", engine.Args{"kind": "secrets"}, "")
	for _, it := range asJSON(t, v).([]any) {
		for _, val := range it.(map[string]any)["data"].(map[string]any) {
			if val != Redacted {
				t.Errorf("list secrets: value %v not redacted", val)
			}
		}
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: dep
spec:
  replicas: 1
  selector: {matchLabels: {app: dep}}
  template:
    metadata: {labels: {app: dep}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox-local:v1
        imagePullPolicy: Never
        command: ["sleep", "3600"]
`

func TestE2ERestart(t *testing.T) {
	e := newE2E(t)
	e.apply(sleeper("web", "3600"))
	e.apply(deployment)
	e.waitReady("web")

	// A bare pod is recreated: same name, new uid.
	r := e.must("restart", engine.Args{"name": "web"})
	if r["action"] != "recreated" || r["old_uid"] == r["new_uid"] || r["new_uid"] == "" {
		t.Fatalf("restart bare pod: %v", r)
	}
	w := e.must("wait_ready", engine.Args{"pod": "web", "timeout": "90s"})
	if w["ready"] != true || w["pods"].([]any)[0].(map[string]any)["ready"] != "1/1" {
		t.Fatalf("wait_ready after restart: %v", w)
	}
	p := e.must("get_pod", engine.Args{"name": "web"})
	if p["metadata"].(map[string]any)["uid"] != r["new_uid"] {
		t.Errorf("uid %v, want %v", p["metadata"].(map[string]any)["uid"], r["new_uid"])
	}

	// A dry run plans without deleting.
	v, err := e.run("restart", engine.Args{"name": "web"}, engine.DryRunServer)
	if err != nil || v.(*RestartResult).Planned == nil {
		t.Fatalf("dry run: %v %v", v, err)
	}
	if p2 := e.must("get_pod", engine.Args{"name": "web"}); p2["metadata"].(map[string]any)["uid"] != r["new_uid"] {
		t.Error("a dry run replaced the pod")
	}

	// A deployment's pod is deleted; its ReplicaSet makes another.
	w = e.must("wait_ready", engine.Args{"selector": "app=dep", "timeout": "90s"})
	if w["ready"] != true {
		t.Fatalf("deployment not ready: %v", w)
	}
	depPod := w["pods"].([]any)[0].(map[string]any)["name"].(string)
	r = e.must("restart", engine.Args{"name": depPod})
	if r["action"] != "deleted" || !strings.HasPrefix(r["owner"].(string), "ReplicaSet/dep-") {
		t.Errorf("restart deployment pod: %v", r)
	}
	// And a rollout restart annotates the template.
	r = e.must("restart", engine.Args{"kind": "deploy", "name": "dep"})
	d := e.must("get", engine.Args{"kind": "deployment", "name": "dep"})
	ann := d["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
	if r["action"] != "rollout" || ann[restartedAtAnnotation] != r["restarted_at"] {
		t.Errorf("rollout restart: %v, annotations %v", r, ann)
	}
	err = e.specs["restart"].Undo(context.Background(), &engine.Mutation{Target: "deployment " + e.ns + "/dep", Applied: true})
	wantKind(t, err, engine.KindIrreversible, "restart undo: deployment "+e.ns+"/dep was restarted; a restart has no inverse")
}
