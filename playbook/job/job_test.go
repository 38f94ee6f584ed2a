package job

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/bundle"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	corev1 "k8s.io/api/core/v1"
)

const jobYAML = `auth: {insecure: true}
executor: job
job:
  namespace: diag-runs
  host_network: true
  env: {KUBERNETES_SERVICE_HOST: 127.0.0.1, KUBERNETES_SERVICE_PORT: "6443"}
  node_local: true
  runtime_endpoint: unix:///tmp/kdc/containerd/containerd.sock
  node_selector: {kubernetes.io/hostname: kdiag-node}
routes:
  - {name: r, runbook: wait-and-log}
`

// TestJobSpec checks the Job built for a run: kdiag's arguments per
// policy, labels, deadlines, and the node_local and host_network settings.
func TestJobSpec(t *testing.T) {
	cfg, err := playbook.Parse("playbooks.yaml", []byte(jobYAML))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Job.SetDefaultImage("ghcr.io/kdiag/kdiag:v9.9.9")
	j := New(cfg, nil)
	req := playbook.RunRequest{
		ID: "20260101T030405Z-1a2b3c4d", Runbook: "@kdiag//readiness-probe-failing.star",
		Params:  map[string]any{"pod": "web-0", "namespace": "shop", "ephemeral": "false"},
		Labels:  map[string]string{"route": "pod-not-ready", "alertname": "KubePodNotReady"},
		Policy:  playbook.Policy{Route: "pod-not-ready", Mutations: playbook.MutationsAllow, AllowBuiltins: []string{"patch_configmap", "restart"}},
		Timeout: 10 * time.Minute,
	}
	job := j.job(req)
	want := []string{"run", "@kdiag//readiness-probe-failing.star",
		"-p", "ephemeral=false", "-p", "namespace=shop", "-p", "pod=web-0",
		"--label", "alertname=KubePodNotReady", "--label", "route=pod-not-ready",
		"--allow-builtins=patch_configmap,restart", "--timeout=10m0s", "--stream-transcript", "--frame-key-file=/var/run/kdiag/frame-key/key", "--no-record",
		"--node-mode=local", "--runtime-endpoint=unix:///tmp/kdc/containerd/containerd.sock"}
	ps := job.Spec.Template.Spec
	c := ps.Containers[0]
	if d := cmp.Diff(want, c.Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	if job.Name != "kdiag-run-20260101t030405z-1a2b3c4d" || job.Namespace != "diag-runs" ||
		job.Labels[RunLabel] != req.ID || ps.ServiceAccountName != playbook.DefaultJobServiceAccount || c.Image != "ghcr.io/kdiag/kdiag:v9.9.9" {
		t.Errorf("job %s/%s labels %v sa %s image %s", job.Namespace, job.Name, job.Labels, ps.ServiceAccountName, c.Image)
	}
	if *job.Spec.BackoffLimit != 0 || *job.Spec.ActiveDeadlineSeconds != 720 || *job.Spec.TTLSecondsAfterFinished != 3600 ||
		ps.RestartPolicy != corev1.RestartPolicyNever || *ps.TerminationGracePeriodSeconds != 15 {
		t.Errorf("job spec %+v", job.Spec)
	}
	if !ps.HostNetwork || ps.DNSPolicy != corev1.DNSClusterFirstWithHostNet || !ps.HostPID ||
		!*c.SecurityContext.Privileged || ps.Volumes[0].HostPath.Path != "/tmp/kdc/containerd/containerd.sock" ||
		c.VolumeMounts[0].MountPath != "/tmp/kdc/containerd/containerd.sock" || ps.NodeSelector["kubernetes.io/hostname"] != "kdiag-node" {
		t.Errorf("node-local pod spec %+v", ps)
	}
	if v := ps.Volumes[len(ps.Volumes)-1]; v.Secret == nil || v.Secret.SecretName != "kdiag-run-20260101t030405z-1a2b3c4d-key" ||
		c.VolumeMounts[len(c.VolumeMounts)-1].MountPath != "/var/run/kdiag/frame-key" {
		t.Errorf("frame key volume %+v mounts %+v", v, c.VolumeMounts)
	}
	if len(c.Env) != 2 || c.Env[0].Name != "KUBERNETES_SERVICE_HOST" || c.Env[0].Value != "127.0.0.1" {
		t.Errorf("env %+v", c.Env)
	}

	for _, tc := range []struct {
		policy playbook.Policy
		flag   string
	}{
		{playbook.Policy{Mutations: playbook.MutationsNever}, "--allow-builtins="},
		{playbook.Policy{Mutations: playbook.MutationsDryRun}, "--dry-run=client"},
	} {
		req.Policy = tc.policy
		if args := j.Args(req); !slices.Contains(args, tc.flag) || slices.ContainsFunc(args, func(a string) bool { return a == "--yes" }) {
			t.Errorf("%s: args %v, want %s", tc.policy.Mutations, args, tc.flag)
		}
	}

	// Without node_local the pod runs as non-root with no capabilities.
	j.Config.NodeLocal, j.Config.NodeMode = false, "agent"
	req.Timeout = 0
	job = j.job(req)
	sc := job.Spec.Template.Spec.Containers[0].SecurityContext
	if job.Spec.Template.Spec.HostPID || sc.Privileged != nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || job.Spec.ActiveDeadlineSeconds != nil {
		t.Errorf("plain pod: hostPID %v security %+v deadline %v", job.Spec.Template.Spec.HostPID, sc, job.Spec.ActiveDeadlineSeconds)
	}
	args := job.Spec.Template.Spec.Containers[0].Args
	if d := cmp.Diff([]string{"--node-mode=agent", "--agent-image=ghcr.io/kdiag/kdiag:v9.9.9", "--runtime-endpoint=unix:///tmp/kdc/containerd/containerd.sock"}, args[len(args)-3:]); d != "" {
		t.Errorf("agent args (-want +got):\n%s", d)
	}

	// The defaults: node built-ins in an agent pod of the Job's image.
	cfg, err = playbook.Parse("playbooks.yaml", []byte("auth: {insecure: true}\nexecutor: job\njob: {image: reg/kdiag:v2}\nroutes:\n  - {runbook: wait-and-log}\n"))
	if err != nil {
		t.Fatal(err)
	}
	args = New(cfg, nil).Args(req)
	if d := cmp.Diff([]string{"--node-mode=agent", "--agent-image=reg/kdiag:v2"}, args[len(args)-2:]); d != "" {
		t.Errorf("default args (-want +got):\n%s", d)
	}
}

// TestJobRunbookFromFile: a route may name a runbook file with the Job
// executor: its Job runs it from the bundle of its files, mounted from
// the bundle's ConfigMap and checked against its digest; a runbook whose
// files do not fit a ConfigMap is refused when the server starts, naming
// the limit and the size.
func TestJobRunbookFromFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mine.star"), []byte("load(\"lib.star\", \"x\")\nrunbook(name = \"mine\", summary = \"Mine.\")\ndef main(p):\n    pass\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib.star"), []byte("x = 1\n"), 0o644)
	y := "auth: {insecure: true}\nexecutor: job\nroutes:\n  - {runbook: wait-and-log}\n  - name: mine\n    runbook: mine.star\n"
	os.WriteFile(filepath.Join(dir, "playbooks.yaml"), []byte(y), 0o644)
	cfg, err := playbook.Load(filepath.Join(dir, "playbooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j := New(cfg, nil)
	s, err := playbook.New(cfg, playbook.Options{Specs: std.Specs(), Executor: j, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	prog, err := engine.Load(filepath.Join(dir, "mine.star"), engine.Options{Specs: std.Specs(), Loader: cfg.Loader(nil)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Build(prog)
	if err != nil {
		t.Fatal(err)
	}
	job := j.job(playbook.RunRequest{ID: "x", Runbook: filepath.Join(dir, "mine.star"), Bundle: b})
	c := job.Spec.Template.Spec.Containers[0]
	if d := cmp.Diff([]string{"run", "--bundle=/var/run/kdiag/bundle", "--bundle-digest=" + b.Digest, "mine.star"}, c.Args[:4]); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	v := job.Spec.Template.Spec.Volumes[len(job.Spec.Template.Spec.Volumes)-1]
	if v.ConfigMap == nil || v.ConfigMap.Name != b.Name() || job.Labels[BundleLabel] != b.Name() || c.VolumeMounts[len(c.VolumeMounts)-1].MountPath != "/var/run/kdiag/bundle" {
		t.Errorf("bundle volume %+v, labels %v, mounts %+v", v, job.Labels, c.VolumeMounts)
	}

	os.WriteFile(filepath.Join(dir, "lib.star"), []byte("x = 1\n# "+strings.Repeat("x", bundle.MaxBytes)+"\n"), 0o644)
	cfg, _ = playbook.Load(filepath.Join(dir, "playbooks.yaml"))
	_, err = playbook.New(cfg, playbook.Options{Specs: std.Specs(), Executor: New(cfg, nil), StoreDir: t.TempDir()})
	want := filepath.Join(dir, "playbooks.yaml") + `:6: route "mine": executor job: bundle of ` + filepath.Join(dir, "mine.star") + `: its 2 files are 1048`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "over the 1048576 bytes (1 MiB) a ConfigMap holds") {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// TestJobOutcome maps what came back from a Job's pod to outcomes: the
// footer when the transcript is whole, else why the pod ended with
// kdiag's last error, and a damaged stream is never a success.
func TestJobOutcome(t *testing.T) {
	var frames bytes.Buffer
	fw := transcript.NewFrameWriter(&frames)
	for _, e := range events(1 << 10) {
		fw.Event(e)
	}
	lines := bytes.Split(bytes.TrimSpace(frames.Bytes()), []byte("\n"))
	for name, tc := range map[string]struct {
		log        [][]byte
		why        string
		status     string
		wantPrefix string
	}{
		"whole": {log: lines, why: "kdiag ended with exit code 0", status: playbook.StatusOK},
		"refused before the run": {
			log:        [][]byte{[]byte("kdiag: running x"), []byte("kdiag: rbac: the current user \"u\" cannot \"get\" \"pods\"")},
			why:        "kdiag in job j ended with exit code 1",
			status:     playbook.StatusFailed,
			wantPrefix: `kdiag in job j ended with exit code 1: rbac: the current user "u" cannot "get" "pods"`,
		},
		"killed mid-run": {
			log: append(lines[:2:2], []byte("▶ step"), []byte("  logs → ok")), why: "kdiag in job j ended with exit code 137 (OOMKilled)",
			status: playbook.StatusFailed, wantPrefix: "kdiag in job j ended with exit code 137 (OOMKilled): the transcript ends after 2 events, without a footer: ▶ step / logs → ok",
		},
		"damaged": {
			log: append([][]byte{lines[0]}, lines[2:]...), why: "x", status: playbook.StatusFailed,
			wantPrefix: "x: transcript stream: event 2 arrived where event 1 was due",
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := &jobRun{live: transcript.NewFrameReader(nil)}
			for _, l := range tc.log {
				r.live.Line(l)
			}
			out := r.outcome(tc.why)
			if out.Status != tc.status || !strings.HasPrefix(out.Message, tc.wantPrefix) {
				t.Fatalf("got %s %q\nwant %s %q", out.Status, out.Message, tc.status, tc.wantPrefix)
			}
		})
	}
}

// events returns a small transcript whose call result is a line of n
// bytes with multi-byte runes.
func events(n int) []*transcript.Event {
	big := strings.Repeat("é€x", n/6)
	return []*transcript.Event{
		{Type: transcript.TypeHeader, Version: transcript.Version, Name: "t", Runbook: "@kdiag//t.star"},
		{Type: transcript.TypeCall, Seq: 1, Builtin: "logs", Result: json.RawMessage(`{"text":"` + big + `"}`)},
		{Type: transcript.TypePrint, Seq: 2, Message: "kdiag-transcript 9 1/1 not a frame when inside a message"},
		{Type: transcript.TypeFooter, Seq: 3, Status: transcript.StatusOK},
	}
}
