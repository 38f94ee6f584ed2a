package playbook_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/playbooktest"
)

// fakePods is a PodResolver over a fixed list: the edge cases (12 pods,
// hostile names) a cluster test cannot cheaply set up. The real one,
// playbook.KubePods, runs in test/e2e's TestPlaybookFanout.
type fakePods struct {
	mu    sync.Mutex
	pods  []fleet.Target
	calls []string
}

func (f *fakePods) call(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakePods) Pods(_ context.Context, ns, selector string) ([]fleet.Target, error) {
	f.call("pods " + ns + " " + selector)
	var out []fleet.Target
	for _, p := range f.pods {
		if p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakePods) WorkloadSelector(_ context.Context, ns, kind, name string) (string, error) {
	f.call("workload " + ns + " " + kind + "/" + name)
	if name == "gone" {
		return "", fmt.Errorf("%s %s/%s not found", kind, ns, name)
	}
	return "app=" + name, nil
}

func (f *fakePods) ReplicaSelector(_ context.Context, ns, name string) (string, string, error) {
	f.call("replicas " + ns + " " + name)
	return "app=web", "Deployment/web", nil
}

// replicas returns n pods of ns web-0..web-(n-1), two nodes, the given
// names replacing the first ones.
func replicas(ns string, n int, names ...string) []fleet.Target {
	var out []fleet.Target
	for i := range n {
		name := fmt.Sprintf("web-%02d", i)
		if i < len(names) {
			name = names[i]
		}
		out = append(out, fleet.Target{Namespace: ns, Pod: name, Node: fmt.Sprintf("node-%d", i%2)})
	}
	return out
}

// fanoutRoute routes KubeDeploymentReplicasMismatch to replica.star over
// the deployment's pods.
func fanoutRoute(t testing.TB, fanout, extra string) string {
	return `  - name: replicas
    match: {alertname: KubeDeploymentReplicasMismatch}
    runbook: ` + testdata(t, "replica.star") + `
    params:
      namespace: "{{ .Labels.namespace }}"
    fanout:
` + fanout + extra
}

const ownerFanout = "      owner: {kind: deployment, name: \"{{ .Labels.deployment }}\"}\n"

func startFanout(t testing.TB, cfg *playbook.Config, pods *fakePods) (*playbooktest.Server, world) {
	w := world(t.TempDir())
	s := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(w), Pods: pods})
	s.Token = testToken
	return s, w
}

// setDetail reads GET /runs/ID of a fan-out run.
func setDetail(t *testing.T, s *playbooktest.Server, id string) playbook.SetDetail {
	t.Helper()
	code, _, b := s.Get(t, "/runs/"+id+"?format=json", "")
	var d playbook.SetDetail
	if code != http.StatusOK || json.Unmarshal(b, &d) != nil || d.Run == nil || d.Run.Set == nil {
		t.Fatalf("GET /runs/%s: %d %s", id, code, b)
	}
	return d
}

// TestFanoutSet sends a workload-level alert for a Deployment of 4 pods,
// one broken: the set runs the runbook per pod, stores a transcript per
// pod in the fleet layout, groups the pods by verdict in run.json, the
// API, the pages, the notification and the metrics; a repeat of the
// alert is deduplicated as a whole; the tar of the set reads back as a
// fleet.
func TestFanoutSet(t *testing.T) {
	notes := make(chan playbook.Notification, 4)
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n playbook.Notification
		json.NewDecoder(r.Body).Decode(&n)
		notes <- n
	})
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	cfg := config(t, dir, "notify: {url: "+hs.URL+"}\n", fanoutRoute(t, ownerFanout, "      concurrency: 3\n"))
	pods := &fakePods{pods: append(replicas("shop", 4, "web-a", "web-bad", "web-c", "web-d"), fleet.Target{Namespace: "other", Pod: "web-x"})}
	s, _ := startFanout(t, cfg, pods)

	res := s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)
	if len(res) != 1 || res[0].Outcome != playbook.OutcomeStarted {
		t.Fatalf("alert: %+v", res)
	}
	id := res[0].Run
	again := s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeDeduplicated || again[0].Run != id {
		t.Fatalf("repeat while the set runs: %+v, want deduplicated by %s", again[0], id)
	}
	m := s.Wait(t, id, 20*time.Second)
	want := "3 of 4 pods: pod <pod> is fine; 1 of 4 pods: key additional_file breaks pod <pod>"
	if m.Status != playbook.StatusOK || m.Verdict != want || m.Findings != 1 || m.Set.Owner != "Deployment/web" || m.Set.Selector != "app=web" || m.Set.Matched != 4 {
		t.Fatalf("set run: %s (%s) verdict %q findings %d set %+v pods %+v", m.Status, m.Message, m.Verdict, m.Findings, m.Set, m.Set.Pods)
	}
	if got := strings.Join(pods.calls, "; "); got != "workload shop Deployment/web; pods shop app=web" {
		t.Errorf("resolver calls: %s", got)
	}
	again = s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)
	if again[0].Outcome != playbook.OutcomeDeduplicated || again[0].Run != id {
		t.Fatalf("repeat after the set: %+v, want deduplicated by %s", again[0], id)
	}
	if r := runsList(t, s); len(r) != 1 || r[0].Pods != 4 || r[0].Verdict != want {
		t.Fatalf("runs: %+v", r)
	}

	// A transcript per pod, in the fleet layout, each with its own pod.
	runDir := s.Store().Dir(id)
	for _, o := range m.Set.Pods {
		tr, err := transcript.ReadFile(filepath.Join(runDir, "shop_"+o.Pod+".jsonl"))
		if err != nil || tr.Header.Params["pod"] != o.Pod || tr.Header.Labels["run"] != id || tr.Header.Labels["pod"] != o.Pod || tr.Header.Labels["fleet"] != "app=web" {
			t.Fatalf("pod %s: transcript %v %+v", o.Pod, err, tr)
		}
		if o.Status != playbook.StatusOK || o.Node == "" || o.Transcript != "shop_"+o.Pod+".jsonl" {
			t.Errorf("pod outcome %+v", o)
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "transcript.jsonl")); err == nil {
		t.Error("a set has a transcript.jsonl")
	}
	if b, err := os.ReadFile(filepath.Join(runDir, "summary.txt")); err != nil || !strings.Contains(string(b), "3 of 4 pods: pod <pod> is fine") {
		t.Errorf("summary.txt: %v %s", err, b)
	}

	d := setDetail(t, s, id)
	if len(d.Summary.Groups) != 2 || len(d.Summary.Groups[1].Pods) != 1 || d.Summary.Groups[1].Pods[0].Pod != "web-bad" {
		t.Fatalf("summary: %+v", d.Summary)
	}
	_, _, text := s.Get(t, "/runs/"+id+"?format=text", "")
	if !strings.Contains(string(text), "1 of 4 pods: key additional_file breaks pod <pod>\n      shop/web-bad (node node-1)") {
		t.Errorf("text:\n%s", text)
	}
	_, ctype, page := s.Get(t, "/runs/"+id, "")
	if !strings.HasPrefix(ctype, "text/html") || !strings.Contains(string(page), `href="/runs/`+id+`/pods/web-bad"`) || !strings.Contains(string(page), "Deployment/web in namespace shop") {
		t.Errorf("set page (%s):\n%s", ctype, page)
	}
	if _, _, index := s.Get(t, "/", ""); !strings.Contains(string(index), "(4 pods)") {
		t.Errorf("index page:\n%s", index)
	}
	code, _, podPage := s.Get(t, "/runs/"+id+"/pods/web-bad?format=text", "")
	if code != http.StatusOK || !strings.Contains(string(podPage), "key additional_file breaks pod web-bad") {
		t.Errorf("pod report: %d\n%s", code, podPage)
	}
	code, _, podHTML := s.Get(t, "/runs/"+id+"/pods/web-bad", "")
	if code != http.StatusOK || !strings.Contains(string(podHTML), `/runs/`+id+`/pods/web-bad/transcript`) {
		t.Errorf("pod page: %d\n%s", code, podHTML)
	}
	code, _, tb := s.Get(t, "/runs/"+id+"/pods/web-bad/transcript", "")
	if code != http.StatusOK || !bytes.Contains(tb, []byte(`"web-bad"`)) {
		t.Errorf("pod transcript: %d %.200s", code, tb)
	}
	for _, path := range []string{"/runs/" + id + "/pods/web-x", "/runs/" + id + "/pods/..%2f..%2frun.json", "/runs/" + id + "/transcript"} {
		if code, _, b := s.Get(t, path, ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s", path, code, b)
		}
	}

	// The tar of the set: the pods' transcripts and summary.json.
	code, _, tarBody := s.Get(t, "/runs/"+id+"/transcripts.tar", "")
	if code != http.StatusOK {
		t.Fatalf("tar: %d %s", code, tarBody)
	}
	tr := tar.NewReader(bytes.NewReader(tarBody))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != id+"/shop_web-a.jsonl "+id+"/shop_web-bad.jsonl "+id+"/shop_web-c.jsonl "+id+"/shop_web-d.jsonl "+id+"/summary.json" {
		t.Errorf("tar: %s", got)
	}

	select {
	case n := <-notes:
		if n.RunID != id || n.Verdict != want || n.Set == nil || len(n.Set.Groups) != 2 || n.Set.Target != "Deployment/web in namespace shop" {
			t.Errorf("notification: %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notification")
	}
	if got := metric(t, s, `kdiag_fanout_pod_runs_total{route="replicas",status="ok"}`); got != "4" {
		t.Errorf("pod runs metric: %s", got)
	}
	if got := metric(t, s, `kdiag_runs_total{route="replicas",status="ok"}`); got != "1" {
		t.Errorf("runs metric: %s", got)
	}
}

func runsList(t *testing.T, s *playbooktest.Server) []playbook.RunSummary {
	t.Helper()
	_, _, b := s.Get(t, "/runs", "")
	var out []playbook.RunSummary
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("/runs: %v %s", err, b)
	}
	return out
}

// TestFanoutMaxPods: a set over max_pods runs nothing by default and
// says why; over_max: first runs the first max_pods by name and records
// the rest as left out; an owner that is not there fails the run clearly.
func TestFanoutMaxPods(t *testing.T) {
	pods := &fakePods{pods: replicas("shop", 12)}
	s, _ := startFanout(t, config(t, t.TempDir(), "", fanoutRoute(t, ownerFanout, "")), pods)
	id := s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)[0].Run
	m := s.Wait(t, id, 10*time.Second)
	if m.Status != playbook.StatusFailed || m.Message != "fanout: 12 pods match app=web in namespace shop, over fanout.max_pods 10: nothing ran (raise max_pods, or set over_max: first to run the first 10 by name)" || len(m.Set.Pods) != 0 {
		t.Fatalf("over max: %s %q %+v", m.Status, m.Message, m.Set)
	}
	if files, _ := filepath.Glob(filepath.Join(s.Store().Dir(id), "*.jsonl")); len(files) != 0 {
		t.Fatalf("transcripts of a refused set: %v", files)
	}
	gone := playbooktest.KubeDeploymentReplicasMismatch("shop", "gone")
	id = s.Alerts(t, gone, http.StatusOK)[0].Run
	if m := s.Wait(t, id, 10*time.Second); m.Status != playbook.StatusFailed || m.Message != "fanout: Deployment shop/gone not found" {
		t.Fatalf("missing deployment: %s %q", m.Status, m.Message)
	}

	s2, _ := startFanout(t, config(t, t.TempDir(), "", fanoutRoute(t, ownerFanout, "      max_pods: 5\n      over_max: first\n")), pods)
	id = s2.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)[0].Run
	m = s2.Wait(t, id, 20*time.Second)
	if m.Status != playbook.StatusOK || len(m.Set.Pods) != 5 || m.Set.Pods[4].Pod != "web-04" || m.Set.Matched != 12 ||
		m.Set.LeftOut != "12 pods match app=web; the first 5 by name ran, 7 were left out (fanout.max_pods 5, over_max: first)" || !strings.Contains(m.Message, "7 were left out") {
		t.Fatalf("over_max first: %s %q %+v", m.Status, m.Message, m.Set)
	}
}

// TestFanoutHostileLabels sends alerts whose labels would widen the set
// or leave the namespace: each is an error naming the value, and no run
// starts.
func TestFanoutHostileLabels(t *testing.T) {
	pods := &fakePods{pods: replicas("shop", 2)}
	routes := fanoutRoute(t, ownerFanout, "") + `  - name: by-label
    match: {alertname: AppDown}
    runbook: ` + testdata(t, "replica.star") + `
    params:
      namespace: "{{ .Labels.namespace }}"
    fanout:
      selector: {app: "{{ .Labels.app }}"}
  - name: of-pod
    match: {alertname: PodDown}
    runbook: ` + testdata(t, "replica.star") + `
    params:
      namespace: "{{ .Labels.namespace }}"
    fanout:
      replicas_of: "{{ .Labels.pod }}"
`
	s, _ := startFanout(t, config(t, t.TempDir(), "", routes), pods)
	for i, tc := range []struct {
		labels map[string]string
		reason string
	}{
		{map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "../web"}, `owner.name "../web" is not an object name`},
		{map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "web,db"}, `owner.name "web,db" is not an object name`},
		{map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "", "deployment": "web"}, `namespace "" is not a namespace name`},
		{map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop,kube-system", "deployment": "web"}, `namespace "shop,kube-system" is not a namespace name`},
		{map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop"}, `map has no entry for key "deployment"`},
		{map[string]string{"alertname": "AppDown", "namespace": "shop", "app": "web,tier!=db"}, `selector.app "web,tier!=db" is not a label value`},
		{map[string]string{"alertname": "AppDown", "namespace": "shop", "app": "web) or (x"}, `selector.app "web) or (x" is not a label value`},
		{map[string]string{"alertname": "AppDown", "namespace": "shop", "app": ""}, `selector.app is empty`},
		{map[string]string{"alertname": "AppDown", "namespace": "shop", "app": strings.Repeat("a", 64)}, `must be no more than 63 `},
		{map[string]string{"alertname": "PodDown", "namespace": "shop", "pod": "web-0\n"}, ""}, // trimmed: a valid name
		{map[string]string{"alertname": "PodDown", "namespace": "shop", "pod": "Web_0"}, `replicas_of "Web_0" is not an object name`},
	} {
		h := playbooktest.KubeDeploymentReplicasMismatch("shop", "web")
		h.Alerts[0].Labels, h.Alerts[0].Fingerprint = tc.labels, fmt.Sprintf("%016x", i+1)
		res := s.Alerts(t, h, http.StatusOK)[0]
		if tc.reason == "" {
			if res.Outcome != playbook.OutcomeStarted {
				t.Errorf("%v: %+v", tc.labels, res)
			}
			s.Wait(t, res.Run, 10*time.Second)
			continue
		}
		if res.Outcome != playbook.OutcomeError || res.Run != "" || !strings.Contains(res.Reason, tc.reason) || !strings.HasPrefix(res.Reason, `route "`) {
			t.Errorf("%q: %+v, want error %q", tc.labels, res, tc.reason)
		}
	}
	if r := runsList(t, s); len(r) != 1 {
		t.Fatalf("runs after hostile alerts: %+v", r)
	}
	if got := metric(t, s, `kdiag_alerts_ignored_total{reason="bad_params"}`); got != "10" {
		t.Errorf("bad_params: %s", got)
	}
	if got := strings.Join(pods.calls, "; "); got != "replicas shop web-0; pods shop app=web" {
		t.Errorf("resolver calls: %s", got)
	}
}

// TestFanoutOneAtATime: a route that may apply fixes fans out only with
// fanout.mutations: one-at-a-time, runs one pod after the other, and
// stops at the first run that does not end ok.
func TestFanoutOneAtATime(t *testing.T) {
	route := func(fanout string) string {
		return `  - name: fix
    match: {alertname: KubeDeploymentReplicasMismatch}
    runbook: ` + testdata(t, "replica.star") + `
    params:
      namespace: "{{ .Labels.namespace }}"
      fix: "true"
    mutations: allow
    allow_builtins: [set_flag]
    fanout:
` + ownerFanout + fanout
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
	_, err := playbook.Parse(filepath.Join(dir, "playbooks.yaml"), []byte("auth: {token_file: token}\nroutes:\n"+route("")))
	if err == nil || !strings.Contains(err.Error(), "playbooks.yaml:11: route \"fix\": fanout on a route with mutations: allow would apply fixes to many pods: set fanout.mutations: one-at-a-time") {
		t.Fatalf("allow without one-at-a-time: %v", err)
	}
	pods := &fakePods{pods: replicas("shop", 4, "web-a", "web-fail", "web-c")}
	s, w := startFanout(t, config(t, dir, "", route("      mutations: one-at-a-time\n")), pods)
	id := s.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)[0].Run
	m := s.Wait(t, id, 20*time.Second)
	st := map[string]string{}
	for _, o := range m.Set.Pods {
		st[o.Pod] = o.Status
	}
	if m.Status != playbook.StatusFailed || st["web-a"] != "ok" || st["web-fail"] != "failed" || st["web-c"] != "not-started" || st["web-03"] != "not-started" ||
		!strings.Contains(m.Set.Pods[2].Error, "the run of pod web-fail ended failed, and fanout.mutations: one-at-a-time stops") {
		t.Fatalf("one at a time: %s %q %+v", m.Status, m.Message, m.Set.Pods)
	}
	if !w.has("flags", "web-a") || !w.has("flags", "web-fail") || w.has("flags", "web-c") {
		t.Fatalf("flags set: a %v fail %v c %v", w.has("flags", "web-a"), w.has("flags", "web-fail"), w.has("flags", "web-c"))
	}
}

// TestFanoutConfigErrors checks the fanout: section's errors at load.
func TestFanoutConfigErrors(t *testing.T) {
	for _, tc := range []struct{ fanout, extra, want string }{
		{"      selector: {app: x}\n" + ownerFanout, "", "fanout: give one of selector"},
		{"      max_pods: 3\n", "", "fanout: give one of selector"},
		{"      owner: {kind: CronJob, name: x}\n", "", `fanout.owner.kind "CronJob": want one of Deployment, StatefulSet, DaemonSet, ReplicaSet, Job`},
		{"      owner: {kind: Deployment}\n", "", "fanout.owner.name is required"},
		{"      selector: {\"bad key!\": x}\n", "", `fanout.selector: "bad key!" is not a label key`},
		{"      selector: {app: \"{{ .Labels.app \"}\n", "", "bad template"},
		{ownerFanout + "      max_pods: 101\n", "", "fanout.max_pods must be 1 to 100, got 101"},
		{ownerFanout + "      over_max: some\n", "", `fanout.over_max: unknown policy "some"`},
		{ownerFanout + "      concurrency: 17\n", "", "fanout.concurrency must be 1 to 16, got 17"},
		{ownerFanout + "      mutations: all-at-once\n", "", `fanout.mutations: unknown value "all-at-once"`},
		{ownerFanout + "      mutations: one-at-a-time\n      concurrency: 2\n", "    mutations: allow\n    allow_builtins: [set_flag]\n", "drop fanout.concurrency 2"},
		{ownerFanout + "      colour: red\n", "", `unknown field "colour" in fanout (fields: selector, owner, replicas_of, max_pods, over_max, concurrency, mutations)`},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
		y := "auth: {token_file: token}\nroutes:\n" + fanoutRoute(t, tc.fanout, tc.extra)
		_, err := playbook.Parse(filepath.Join(dir, "playbooks.yaml"), []byte(y))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "playbooks.yaml:") {
			t.Errorf("%s: %v, want %q", tc.fanout, err, tc.want)
		}
	}
	// params: the set needs the namespace, and gives each run its pod.
	for _, tc := range []struct{ params, want string }{
		{"      pod: x\n      namespace: shop\n", "fanout gives each run its pod: drop params.pod"},
		{"      fix: \"false\"\n", "fanout needs params.namespace"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600)
		y := "auth: {token_file: token}\nroutes:\n  - runbook: " + testdata(t, "replica.star") + "\n    params:\n" + tc.params + "    fanout:\n" + ownerFanout
		if _, err := playbook.Parse(filepath.Join(dir, "playbooks.yaml"), []byte(y)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.params, err, tc.want)
		}
	}
	// New: no pod resolver.
	cfg := config(t, t.TempDir(), "", fanoutRoute(t, ownerFanout, ""))
	if _, err := playbook.New(cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "fanout needs a Kubernetes client") {
		t.Errorf("no resolver: %v", err)
	}
}

// TestFanoutDamagedPod: kdiag undo's check refuses a set's pod
// transcript that the set's run.json records as damaged, and only that
// one.
func TestFanoutDamagedPod(t *testing.T) {
	dir := t.TempDir()
	m := playbook.Meta{ID: "20260101T000000Z-00000000", Status: playbook.StatusFailed, Set: &playbook.SetMeta{Pods: []fleet.Outcome{
		{Target: fleet.Target{Namespace: "shop", Pod: "web-a"}, Status: "damaged", Transcript: "shop_web-a.jsonl", Error: "transcript: line 3: bad frame"},
		{Target: fleet.Target{Namespace: "shop", Pod: "web-b"}, Status: playbook.StatusOK, Transcript: "shop_web-b.jsonl"},
	}}}
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "run.json"), b, 0o600)
	if why := playbook.DamagedTranscript(filepath.Join(dir, "shop_web-a.jsonl")); why != "transcript: line 3: bad frame" {
		t.Errorf("damaged pod: %q", why)
	}
	if why := playbook.DamagedTranscript(filepath.Join(dir, "shop_web-b.jsonl")); why != "" {
		t.Errorf("sound pod: %q", why)
	}
	if why := playbook.DamagedTranscript(filepath.Join(t.TempDir(), "shop_web-a.jsonl")); why != "" {
		t.Errorf("a fleet directory without run.json: %q", why)
	}
}

// TestFanoutResumedAfterCrash: a set queued behind another run when the
// server is killed is resumed as a set by the next server on the store,
// with what the alert named, and runs its pods.
func TestFanoutResumedAfterCrash(t *testing.T) {
	cfg := config(t, t.TempDir(), "concurrency: 1\n", fanoutRoute(t, ownerFanout, "")+slowRoute(t, "5s"))
	pods := &fakePods{pods: replicas("shop", 3, "web-a", "web-bad")}
	store1 := t.TempDir()
	s1 := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: store1, Pods: pods})
	s1.Token = testToken
	slow := s1.Alerts(t, podAlerts("a"), http.StatusOK)[0].Run
	set := s1.Alerts(t, playbooktest.KubeDeploymentReplicasMismatch("shop", "web"), http.StatusOK)[0].Run
	if m, err := s1.Store().Load(set); err != nil || m.Status != playbook.StatusQueued || m.Set == nil {
		t.Fatalf("the set behind the slow run: %v %+v", err, m)
	}
	crash := filepath.Join(t.TempDir(), "store")
	if out, err := exec.Command("cp", "-a", store1, crash).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	s1.Stop()
	s2 := playbooktest.Start(t, cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: crash, Pods: pods})
	s2.Token = testToken
	m := s2.Wait(t, set, 20*time.Second)
	if m.Status != playbook.StatusOK || len(m.Set.Pods) != 3 || m.Verdict != "2 of 3 pods: pod <pod> is fine; 1 of 3 pods: key additional_file breaks pod <pod>" {
		t.Fatalf("the resumed set: %s %q %q %+v", m.Status, m.Message, m.Verdict, m.Set)
	}
	if r, _ := s2.Store().Load(slow); r.Status != playbook.StatusInterrupted && r.Status != playbook.StatusOK {
		t.Errorf("the slow run: %s", r.Status)
	}
}

// TestFanoutSamePods: one notification holding the KubePodNotReady of 3
// replicas, on a replicas_of route: the three alerts have their own
// fingerprints, but name the same set. One set runs the 3 pods; the
// others end duplicate, naming it, and run nothing.
func TestFanoutSamePods(t *testing.T) {
	route := `  - name: replicas-of-pod
    match: {alertname: KubePodNotReady}
    runbook: ` + testdata(t, "replica.star") + `
    params:
      namespace: "{{ .Labels.namespace }}"
    fanout:
      replicas_of: "{{ .Labels.pod }}"
`
	pods := &fakePods{pods: replicas("shop", 3, "web-a", "web-b", "web-c")}
	s, _ := startFanout(t, config(t, t.TempDir(), "", route), pods)
	res := s.Alerts(t, podAlerts("web-a", "web-b", "web-c"), http.StatusOK)
	var ok, dup []*playbook.Meta
	for _, r := range res {
		if r.Outcome != playbook.OutcomeStarted {
			t.Fatalf("alert %+v", r)
		}
		m := s.Wait(t, r.Run, 20*time.Second)
		switch m.Status {
		case playbook.StatusOK:
			ok = append(ok, m)
		case playbook.StatusDuplicate:
			dup = append(dup, m)
		default:
			t.Fatalf("set %s: %s %q", m.ID, m.Status, m.Message)
		}
	}
	if len(ok) != 1 || len(dup) != 2 || len(ok[0].Set.Pods) != 3 || ok[0].Set.Owner != "Deployment/web" {
		t.Fatalf("%d sets ok, %d duplicate: %+v", len(ok), len(dup), ok)
	}
	for _, d := range dup {
		if len(d.Set.Pods) != 0 || !strings.Contains(d.Message, "another set runs these pods: run "+ok[0].ID+" of route replicas-of-pod (pods app=web in namespace shop)") {
			t.Errorf("duplicate set %s: %q %+v", d.ID, d.Message, d.Set)
		}
	}
	if got := metric(t, s, `kdiag_fanout_pod_runs_total{route="replicas-of-pod"}`); got != "3" {
		t.Errorf("pod runs: %s, want 3", got)
	}
}
