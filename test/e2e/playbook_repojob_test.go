package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/kube"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/repos"
	"github.com/kdiag/kdiag/engine/repos/repotest"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/kdiag/kdiag/playbook/playbooktest"
	"github.com/kdiag/kdiag/runbooks"
	"github.com/kdiag/kdiag/test/harness"
)

const repoTeamCheck = `load("@rel//util.star", "greet")
load("//lib/words.star", "word")
runbook(name = "team-check", summary = "Says the team's version.")

def main(p):
    verdict(greet(word + " %s"))
`

// TestJobRepositoryRunbook runs a pinned repository's runbook (which
// loads a module of its own repository and one of another pinned
// repository) under the Job executor: the server ships its files as a
// bundle ConfigMap named by digest, the Job's kdiag verifies and runs it,
// and the transcript names each file's repository, URL and commit. A
// second run reuses the ConfigMap; a ConfigMap of the bundle's name with
// other content is refused by the server, and a tampered bundle by kdiag
// in a pod; POST /repos/update moves the branch pin (the next run names
// the new commit) and refuses the moved tag; unused bundles are collected,
// a bundle a Job uses is not.
func TestJobRepositoryRunbook(t *testing.T) {
	env := seedCluster(t)
	image := kdiagImage(t, env)
	jobsNS := namespace(t, env, "repojob")
	env.Kubectl(t, "create", "serviceaccount", playbook.DefaultJobServiceAccount, "-n", jobsNS)

	root := t.TempDir()
	team, rel := repotest.New(t, root, "team"), repotest.New(t, root, "rel")
	r1 := team.Commit(map[string]string{"team-check.star": fmt.Sprintf(repoTeamCheck, "v1"), "lib/words.star": "word = \"team\"\n", "kdiag.yaml": "name: team\n"}, "v1")
	rel1 := rel.Commit(map[string]string{"util.star": "def greet(v):\n    return \"hello from \" + v\n"}, "rel 1")
	rel.Tag("v1.0.0")
	lock := &repos.Lock{Path: filepath.Join(root, "kdiag.lock")}
	cache := &repos.Cache{Dir: filepath.Join(root, "cache")}
	for _, r := range [][3]string{{"team", team.URL(), ""}, {"rel", rel.URL(), "v1.0.0"}} {
		if _, err := repos.Add(t.Context(), lock, cache, r[0], r[1], r[2]); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(pbToken), 0o600)
	os.MkdirAll(filepath.Join(dir, "mine", "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "mine", "local.star"), []byte("load(\"lib/x.star\", \"x\")\nload(\"@rel//util.star\", \"greet\")\ndef main(p):\n    verdict(greet(x))\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "mine", "lib", "x.star"), []byte("x = \"a local file\"\n"), 0o644)
	cfg := playbooktest.Config(t, dir, "auth: {token_file: token}\n"+plainJobYAML(jobsNS, image, "")+
		"routes:\n  - name: team\n    match: {alertname: KubePodNotReady}\n    runbook: team-check\n"+
		"  - name: local\n    match: {alertname: Local}\n    runbook: mine/local.star\n")
	cs, _, err := kube.NewClients(env.Kubeconfig, "", "").Kube()
	if err != nil {
		t.Fatal(err)
	}
	jobs := job.New(cfg, cs)
	jobs.Poll = 200 * time.Millisecond
	s := playbooktest.Start(t, cfg, playbook.Options{
		Specs: builtins.All(builtins.Config{Kubeconfig: env.Kubeconfig}), Executor: jobs, Version: "e2e",
		Repos: &playbook.Repos{Lock: lock, Cache: cache, Base: &engine.Loader{Builtin: runbooks.FS}},
	})
	s.Token, s.ReadToken = pbToken, pbToken

	run := func(pod string) (*playbook.Meta, map[string]string) {
		t.Helper()
		res := s.Alerts(t, playbooktest.KubePodNotReady("default", pod), http.StatusOK)
		m := s.Wait(t, res[0].Run, 2*time.Minute)
		files := map[string]string{}
		if m.Status == playbook.StatusOK {
			for _, f := range storedTranscript(t, s, m.ID).Header.Files {
				files[f.Path] = f.Repo + " " + f.URL + " " + f.Commit
			}
		}
		return m, files
	}
	bundles := func() map[string]string { // name -> uid
		out := map[string]string{}
		for _, l := range strings.Fields(env.Kubectl(t, "get", "configmaps", "-n", jobsNS, "-l", job.BundleLabel, "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{" "}{end}`)) {
			n, uid, _ := strings.Cut(l, "=")
			out[n] = uid
		}
		return out
	}

	start := time.Now()
	m, files := run("repo-1")
	if m.Status != playbook.StatusOK || m.Verdict != "hello from team v1" {
		t.Fatalf("first run: %s %q %s", m.Status, m.Verdict, m.Message)
	}
	t.Logf("first run (bundle created, Job run, transcript back) in %s", time.Since(start).Round(time.Millisecond))
	want := map[string]string{
		"@team//team-check.star": "team " + team.URL() + " " + r1,
		"@team//lib/words.star":  "team " + team.URL() + " " + r1,
		"@rel//util.star":        "rel " + rel.URL() + " " + rel1,
	}
	for p, w := range want {
		if files[p] != w {
			t.Fatalf("transcript file %s: %q, want %q (all: %v)", p, files[p], w, files)
		}
	}
	// A .star file of the server's, loading a file next to it and a
	// pinned repository's module, runs in a Job from its own bundle.
	hook := playbooktest.KubePodNotReady("default", "local")
	hook.Alerts[0].Labels = map[string]string{"alertname": "Local"}
	lm := s.Wait(t, s.Alerts(t, hook, http.StatusOK)[0].Run, 2*time.Minute)
	lf := map[string]string{}
	if lm.Status == playbook.StatusOK {
		for _, f := range storedTranscript(t, s, lm.ID).Header.Files {
			lf[f.Path] = f.Repo + " " + f.Commit
		}
	}
	if lm.Status != playbook.StatusOK || lm.Verdict != "hello from a local file" || len(lf) != 3 || lf["local.star"] != " " || lf["lib/x.star"] != " " || lf["@rel//util.star"] != "rel "+rel1 {
		t.Fatalf("a local .star route: %s %q %s, files %v", lm.Status, lm.Verdict, lm.Message, lf)
	}
	localBundles := bundles()
	if len(localBundles) != 2 {
		t.Fatalf("bundles after the local route's run: %v", localBundles)
	}
	env.Kubectl(t, "delete", "configmap", "-n", jobsNS, "-l", job.BundleLabel)

	first := bundles()
	if len(first) != 0 {
		t.Fatalf("bundles left: %v", first)
	}
	if m, _ := run("repo-1b"); m.Status != playbook.StatusOK {
		t.Fatalf("run after the bundles were deleted: %s %s", m.Status, m.Message)
	}
	first = bundles()
	if len(first) != 1 {
		t.Fatalf("bundles after the first run: %v", first)
	}
	var name1 string
	for n := range first {
		name1 = n
	}
	digest := env.Kubectl(t, "get", "configmap", name1, "-n", jobsNS, "-o", `jsonpath={.metadata.annotations.kdiag\.io/digest}`)
	if bundle.NameOf(digest) != name1 {
		t.Fatalf("bundle %s has digest %q", name1, digest)
	}

	// The same files: the same ConfigMap, not recreated.
	start = time.Now()
	if m, _ := run("repo-2"); m.Status != playbook.StatusOK {
		t.Fatalf("second run: %s %s", m.Status, m.Message)
	}
	t.Logf("second run (bundle reused) in %s", time.Since(start).Round(time.Millisecond))
	if b := bundles(); len(b) != 1 || b[name1] != first[name1] {
		t.Fatalf("bundles after the second run: %v, before %v", b, first)
	}

	// A ConfigMap of the bundle's name with other content is never used.
	data := map[string]string{}
	if err := json.Unmarshal([]byte(env.Kubectl(t, "get", "configmap", name1, "-n", jobsNS, "-o", "jsonpath={.data}")), &data); err != nil {
		t.Fatal(err)
	}
	tampered := map[string]string{}
	for k, v := range data {
		tampered[k] = v
	}
	tampered["f0"] = strings.Replace(data["f0"], "greet(word", "greet(\"evil\"", 1)
	env.Kubectl(t, "delete", "configmap", name1, "-n", jobsNS)
	applyConfigMap(t, env, jobsNS, name1, map[string]string{job.BundleLabel: name1}, tampered)
	m, _ = run("repo-3")
	if m.Status != playbook.StatusFailed || !strings.Contains(m.Message, "the configmap "+jobsNS+"/"+name1+" exists but does not hold bundle "+digest) ||
		!strings.Contains(m.Message, "file @team//team-check.star (entry f0) has sha256") {
		t.Fatalf("run over a tampered bundle configmap: %s %s", m.Status, m.Message)
	}
	t.Logf("refused by the server: %s", m.Message)

	// kdiag in a pod refuses the tampered bundle before running anything.
	applyConfigMap(t, env, jobsNS, "repojob-tampered", nil, tampered)
	podOut := bundlePod(t, env, jobsNS, image, "repojob-tampered", digest)
	if !strings.Contains(podOut, "file @team//team-check.star (entry f0) has sha256 ") || !strings.Contains(podOut, "the bundle was tampered with; refusing to run it") || strings.Contains(podOut, "evil") {
		t.Fatalf("kdiag run --bundle on the tampered bundle:\n%s", podOut)
	}
	t.Logf("refused in the pod: %s", strings.TrimSpace(podOut))
	env.Kubectl(t, "delete", "configmap", name1, "repojob-tampered", "-n", jobsNS)
	if m, _ := run("repo-4"); m.Status != playbook.StatusOK || bundles()[name1] == "" {
		t.Fatalf("run after the tampered configmap was deleted: %s %s", m.Status, m.Message)
	}

	// An update moves the branch and refuses the moved tag.
	r2 := team.Commit(map[string]string{"team-check.star": fmt.Sprintf(repoTeamCheck, "v2")}, "v2")
	rel.Commit(map[string]string{"util.star": "def greet(v):\n    return \"moved \" + v\n"}, "rel 2")
	rel.Tag("v1.0.0")
	code, ans := repoUpdate(t, s)
	got := map[string]playbook.RepoUpdate{}
	for _, ru := range ans.Repos {
		got[ru.Repo] = ru
	}
	if code != http.StatusConflict || len(ans.Repos) != 2 || got["rel"].Result != playbook.RepoRefused || !strings.Contains(got["rel"].Message, "tag v1.0.0 of "+rel.URL()+" moved") ||
		got["team"].Result != playbook.RepoUpdated || got["team"].To != r2 {
		t.Fatalf("update: %d %+v", code, ans)
	}
	// After a run the executor collects: with no grace, the bundle of the
	// old commits, which no Job uses any more, goes.
	jobs.BundleGrace = time.Nanosecond
	m, files = run("repo-5")
	if m.Status != playbook.StatusOK || m.Verdict != "hello from team v2" || files["@team//team-check.star"] != "team "+team.URL()+" "+r2 || files["@rel//util.star"] != "rel "+rel.URL()+" "+rel1 {
		t.Fatalf("run after the update: %s %q, files %v", m.Status, m.Verdict, files)
	}
	if b := bundles(); b[name1] != "" {
		t.Fatalf("the old commits' bundle %s was not collected after a run: %v", name1, b)
	}
	jobs.BundleGrace = 0
	if m, _ := run("repo-6"); m.Status != playbook.StatusOK {
		t.Fatalf("run: %s %s", m.Status, m.Message)
	}
	applyConfigMap(t, env, jobsNS, name1, map[string]string{job.BundleLabel: name1}, data) // the old bundle again
	after := bundles()
	var name2 string
	for n := range after {
		if n != name1 {
			name2 = n
		}
	}
	if name2 == "" {
		t.Fatalf("no new bundle after the update: %v", after)
	}

	// Collection: a bundle no Job uses, last used long ago, goes; a bundle
	// a Job uses stays however old.
	old := "kdiag.io/last-used=2020-01-01T00:00:00Z"
	env.Kubectl(t, "annotate", "--overwrite", "configmap", name1, name2, "-n", jobsNS, old)
	holder, _ := json.Marshal(map[string]any{"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": "repojob-holder", "namespace": jobsNS, "labels": map[string]string{job.BundleLabel: name2}},
		"spec": map[string]any{"suspend": true, "template": map[string]any{"spec": map[string]any{"restartPolicy": "Never",
			"containers": []any{map[string]any{"name": "x", "image": "busybox-local:v1", "imagePullPolicy": "Never"}}}}}})
	hp := filepath.Join(t.TempDir(), "job.json")
	os.WriteFile(hp, holder, 0o644)
	env.Kubectl(t, "create", "-f", hp)
	gone, err := jobs.CollectBundles(t.Context())
	if err != nil || len(gone) != 1 || gone[0] != name1 {
		t.Fatalf("collected %v (%v), want [%s]", gone, err, name1)
	}
	if b := bundles(); b[name1] != "" || b[name2] == "" {
		t.Fatalf("bundles after the collection: %v", b)
	}
	env.Kubectl(t, "delete", "job", "repojob-holder", "-n", jobsNS)
	if gone, err := jobs.CollectBundles(t.Context()); err != nil || len(gone) != 1 || gone[0] != name2 {
		t.Fatalf("collected %v (%v), want [%s]", gone, err, name2)
	}
	noRunsLeft(t, env, jobsNS)
}

// applyConfigMap creates the ConfigMap name in ns with labels and data.
func applyConfigMap(t *testing.T, env *harness.Env, ns, name string, labels, data map[string]string) {
	t.Helper()
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": ns, "labels": labels}, "data": data}
	b, _ := json.Marshal(cm)
	p := filepath.Join(t.TempDir(), "cm.json")
	os.WriteFile(p, b, 0o644)
	env.Kubectl(t, "create", "-f", p)
}

// bundlePod runs kdiag run --bundle over the ConfigMap cm in a pod, as the
// Job executor's pod does, and returns its log once it has ended.
func bundlePod(t *testing.T, env *harness.Env, ns, image, cm, digest string) string {
	t.Helper()
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "repojob-tampered", "namespace": ns},
		"spec": map[string]any{"restartPolicy": "Never", "serviceAccountName": playbook.DefaultJobServiceAccount,
			"volumes": []any{map[string]any{"name": "bundle", "configMap": map[string]any{"name": cm}}},
			"containers": []any{map[string]any{"name": "kdiag", "image": image, "imagePullPolicy": "Never",
				"args":         []any{"run", "--bundle=/var/run/kdiag/bundle", "--bundle-digest=" + digest, "@team//team-check.star", "--no-record"},
				"volumeMounts": []any{map[string]any{"name": "bundle", "mountPath": "/var/run/kdiag/bundle", "readOnly": true}}}}}}
	b, _ := json.Marshal(pod)
	p := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(p, b, 0o644)
	env.Kubectl(t, "create", "-f", p)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		phase := env.Kubectl(t, "get", "pod", "repojob-tampered", "-n", ns, "-o", "jsonpath={.status.phase}")
		if phase == "Failed" || phase == "Succeeded" {
			out := env.Kubectl(t, "logs", "repojob-tampered", "-n", ns)
			env.Kubectl(t, "delete", "pod", "repojob-tampered", "-n", ns, "--wait=false")
			if phase != "Failed" {
				t.Fatalf("kdiag on a tampered bundle ended %s:\n%s", phase, out)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod did not end: %s", phase)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// repoUpdate posts to /repos/update with the token.
func repoUpdate(t *testing.T, s *playbooktest.Server) (int, playbook.RepoUpdateResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/repos/update", nil)
	req.Header.Set("Authorization", "Bearer "+pbToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out playbook.RepoUpdateResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %d %s: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, out
}
