// Package alerts tests kdiag serve behind a real alert pipeline:
// Prometheus scraping the local cluster's kubelet, a readiness rule,
// Alertmanager posting webhooks (test/alerts/pipeline.sh).
package alerts

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/test/harness"
)

// TestAlertPipeline breaks the seed pod (examples/broken-pod) and lets
// the real pipeline handle it: the kubelet's failed readiness probes
// fire KdiagPodNotReady, Alertmanager posts it to kdiag serve, which runs
// exactly one dry-run diagnosis naming the ConfigMap key; the alert
// persisting fires KdiagPodNotReadyPersistent, whose route fixes the pod.
// Alertmanager's repeats are deduplicated and its resolved notifications
// ignored: two runs in all.
func TestAlertPipeline(t *testing.T) {
	env := harness.Cluster(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kdiag, app := build(t, root)
	env.ImportImage(t, "kdiag-broken-app:v1", app)
	ns := namespace(t, env)
	p := startPipeline(t, root, kdiag, ns, "30s")

	applySeed(t, env, root, ns)
	t0 := time.Now()
	broken := waitFor(t, 90*time.Second, "the seed pod Running but not Ready", func() bool {
		f := strings.Fields(podState(env, ns, "my-broken-pod"))
		return len(f) == 4 && f[0] == "Running" && f[1] == "False" && f[2] == "true" && f[3] == "true"
	})

	firing := waitFor(t, 60*time.Second, "KdiagPodNotReady firing in Prometheus", func() bool {
		for _, a := range p.promAlerts(t, ns) {
			if a.Labels["alertname"] == "KdiagPodNotReady" && a.State == "firing" && a.Labels["pod"] == "my-broken-pod" {
				return true
			}
		}
		return false
	})

	var diag *playbook.Meta
	waitFor(t, 60*time.Second, "kdiag serve to start a run", func() bool { return len(p.runs(t)) > 0 })
	rs := p.runs(t)
	if rs[0].Route != "pod-not-ready-diagnose" || rs[0].Alert["alertname"] != "KdiagPodNotReady" || rs[0].Alert["pod"] != "my-broken-pod" {
		t.Fatalf("first run %+v, want route pod-not-ready-diagnose for KdiagPodNotReady of my-broken-pod", rs[0])
	}
	diagDone := waitFor(t, 4*time.Minute, "the diagnosis to end", func() bool {
		diag = p.meta(t, rs[0].ID)
		return diag.Done()
	})
	if diag.Status != playbook.StatusOK || diag.Policy.Mutations != playbook.MutationsDryRun ||
		!strings.Contains(diag.Verdict, "key additional_file") || !strings.Contains(diag.Verdict, "not applied") {
		t.Fatalf("diagnosis: status %s (%s), policy %+v, verdict %q", diag.Status, diag.Message, diag.Policy, diag.Verdict)
	}
	tr, err := transcript.ReadFile(filepath.Join(p.state, "serve/store/runs", diag.ID, "transcript.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Header.Mode != "dry-run-client" || tr.Header.Labels["alertname"] != "KdiagPodNotReady" {
		t.Fatalf("diagnosis transcript header %+v", tr.Header)
	}

	var fix *playbook.Meta
	waitFor(t, 2*time.Minute, "the fix run", func() bool { return len(p.runs(t)) > 1 })
	rs = p.runs(t)
	if len(rs) != 2 || rs[1].Route != "pod-not-ready-fix" || rs[1].Alert["alertname"] != "KdiagPodNotReadyPersistent" {
		t.Fatalf("runs %+v, want the diagnosis then one pod-not-ready-fix run for KdiagPodNotReadyPersistent", rs)
	}
	fixDone := waitFor(t, 4*time.Minute, "the fix to end", func() bool {
		fix = p.meta(t, rs[1].ID)
		return fix.Done()
	})
	if fix.Status != playbook.StatusOK || fix.Policy.Mutations != playbook.MutationsAllow || fix.Changes < 2 ||
		!strings.Contains(fix.Verdict, "key additional_file") || !strings.Contains(fix.Verdict, "fixed and verified") {
		t.Fatalf("fix: status %s (%s), policy %+v, %d changes, verdict %q", fix.Status, fix.Message, fix.Policy, fix.Changes, fix.Verdict)
	}
	ready := waitFor(t, 30*time.Second, "the pod Ready", func() bool {
		f := strings.Fields(podState(env, ns, "my-broken-pod"))
		return len(f) > 1 && f[1] == "True"
	})
	if data := env.Kubectl(t, "get", "configmap", "myconfig", "-n", ns, "-o", "jsonpath={.data}"); strings.Contains(data, "additional_file") {
		t.Fatalf("key still present after the fix: %s", data)
	}

	// The alerts resolve; Alertmanager sends each group's resolved
	// notification, which kdiag serve ignores.
	resolved := waitFor(t, 90*time.Second, "both alerts resolved in Prometheus and Alertmanager", func() bool {
		return len(p.promAlerts(t, ns)) == 0 && len(p.amAlerts(t, ns)) == 0
	})
	ignored := waitFor(t, 30*time.Second, "two resolved notifications at kdiag serve", func() bool {
		return p.metric(t, "kdiag_alerts_ignored_total", "reason", "resolved") >= 2
	})
	time.Sleep(5 * time.Second) // two more group_intervals: nothing may start now
	if rs := p.runs(t); len(rs) != 2 {
		t.Fatalf("%d runs, want 2 (one diagnosis, one fix): %+v", len(rs), rs)
	}
	dedup := p.metric(t, "kdiag_alerts_ignored_total", "reason", "deduplicated")
	if dedup < 1 {
		t.Fatal("no repeated notification was deduplicated: Alertmanager's repeat_interval did not re-send while the alert fired")
	}
	if n := p.metric(t, "kdiag_webhook_requests_total", "code", "401"); n != 0 {
		t.Fatalf("%v webhooks refused with 401: Alertmanager's credentials_file token was not accepted", n)
	}
	received := p.metric(t, "kdiag_alerts_received_total")
	t.Logf("timeline: pod applied; %s Running not Ready; %s KdiagPodNotReady firing; %s diagnosis received; %s diagnosis ended (%s)",
		since(t0, broken), since(t0, firing), since(t0, diag.Received), since(t0, diagDone), diag.Ended.Sub(*diag.Started).Round(time.Millisecond))
	t.Logf("timeline: %s fix received; %s fix ended (%s); %s pod Ready; %s alerts resolved; %s resolved notifications ignored",
		since(t0, fix.Received), since(t0, fixDone), fix.Ended.Sub(*fix.Started).Round(time.Millisecond), since(t0, ready), since(t0, resolved), since(t0, ignored))
	t.Logf("kdiag serve: %v alerts received, %v deduplicated, 2 runs; diagnosis %q; fix %q", received, dedup, diag.Verdict, fix.Verdict)
}
