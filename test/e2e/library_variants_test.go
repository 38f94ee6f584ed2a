package e2e

// Incidents the first recordings did not rehearse, where a runbook gave a
// confident wrong verdict before: each test reproduces one on the local
// cluster and checks that the runbook names the real cause (or says it is
// in progress) instead. Every test runs in namespaces of its own
// ("audit-..."), deleted when it ends.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
	corev1 "k8s.io/api/core/v1"
)

// libraryCrashLooping is the condition: the named container waits in
// CrashLoopBackOff.
func libraryCrashLooping(name string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		s := libraryStatus(p, name)
		return s != nil && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff"
	}
}

// TestLibraryServiceEndpointsShapes: a named targetPort declared as 8080
// whose server listens on 9090 (the runbook said "its selector, target
// ports and pods agree"); a Service whose only pod crash-loops with no
// readiness probe (it blamed the readiness probe); a named targetPort
// declared by one pod of two (it said no selected pod declares it).
func TestLibraryServiceEndpointsShapes(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "audit-svc")
	libraryApply(t, env, ns, "examples/service-endpoints/shapes.yaml")
	for _, name := range []string{"orders", "search-a", "search-b"} {
		libraryWait(t, env, ns, name, "Running", 120*time.Second, libraryRunning)
	}
	libraryWait(t, env, ns, "billing", "CrashLoopBackOff", 120*time.Second, libraryCrashLooping("api"))

	r := libraryRun(t, env, "service-endpoints", "service=orders", "namespace="+ns)
	r.verdictSays(t, "service/orders spec.ports[0].targetPort: http (= 8080 in pod orders): the pods listen on 9090, not 8080",
		"fix: set the containerPort named http (container web) to 9090")
	if strings.Contains(r.verdict, "agree") {
		t.Errorf("the verdict calls the ports in agreement: %s", r.verdict)
	}

	r = libraryRun(t, env, "service-endpoints", "service=billing", "namespace="+ns)
	r.verdictSays(t, "pod billing container api crash-loops (last exit code 3", "run the crashloop runbook on pod billing")
	if strings.Contains(r.text(), "readinessProbe") || strings.Contains(r.verdict, "readiness-probe-failing") {
		t.Errorf("the run blames a readiness probe the pod does not have:\n%s", r.text())
	}

	r = libraryRun(t, env, "service-endpoints", "service=search", "namespace="+ns)
	r.verdictSays(t, "service/search spec.ports[0].targetPort: http is declared by 1 of 2 selected pods: search-b lack it",
		"only search-a serve this port")
	if strings.Contains(r.verdict, "no selected pod declares") {
		t.Errorf("the verdict says no pod declares the port: %s", r.verdict)
	}
}

// TestLibraryRolloutStuckQuota: a rollout with maxUnavailable 0 in a
// namespace whose ResourceQuota allows one pod: the new ReplicaSet cannot
// create its pod, so no new pod is there to be unready (the runbook called
// the rollout done). Then a rollout whose new pod is Ready but waits out
// minReadySeconds, the old pod still running (it called that done too).
func TestLibraryRolloutStuckQuota(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "audit-rollout-quota")
	libraryApply(t, env, ns, "examples/rollout-stuck/quota.yaml")
	env.Kubectl(t, "rollout", "status", "-n", ns, "deployment/quota-web", "--timeout=90s")
	env.Kubectl(t, "set", "env", "-n", ns, "deployment/quota-web", "RELEASE=2")
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "deployment", "quota-web", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].message}`)
		if strings.Contains(out, "exceeded quota") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quota-web's new ReplicaSet was not refused by the quota: %q", out)
		}
		time.Sleep(2 * time.Second)
	}
	r := libraryRun(t, env, "rollout-stuck", "deployment=quota-web", "namespace="+ns)
	r.verdictSays(t, "does not roll out: resourcequota/pods spec.hard.pods: 1 is used up", "cannot create pods",
		"maxUnavailable 0", "raise spec.hard.pods of resourcequota/pods")

	ns2 := namespace(t, env, "audit-rollout-minready")
	libraryApply(t, env, ns2, "examples/rollout-stuck/min-ready.yaml")
	libraryWait(t, env, ns2, libraryPodOf(t, env, ns2, "app=slow-ready"), "Running", 120*time.Second, libraryRunning)
	env.Kubectl(t, "set", "env", "-n", ns2, "deployment/slow-ready", "RELEASE=2")
	deadline = time.Now().Add(90 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "deployment", "slow-ready", "-n", ns2, "-o", "jsonpath={.status.updatedReplicas}/{.status.readyReplicas}")
		if out == "1/2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow-ready's new pod did not get ready beside the old one: updated/ready %q", out)
		}
		time.Sleep(time.Second)
	}
	r = libraryRun(t, env, "rollout-stuck", "deployment=slow-ready", "namespace="+ns2)
	r.verdictSays(t, "is still rolling out: its 1 new pod is Ready", "spec.minReadySeconds (900s)")
	if strings.Contains(r.verdict, "is rolled out") {
		t.Errorf("the verdict calls an unfinished rollout done: %s", r.verdict)
	}
}

// TestLibraryPendingVolumeNodeAffinity: a pod whose claim is Bound to a
// local PersistentVolume pinned to a zone no node is in. The runbook gave
// the scheduler's message back unexplained (and filed its reason as a node
// selector one); it must name the volume's node affinity.
func TestLibraryPendingVolumeNodeAffinity(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "audit-pending-pv")
	pv := "audit-pv-" + ns
	manifest := `apiVersion: v1
kind: PersistentVolume
metadata:
  name: ` + pv + `
spec:
  capacity: {storage: 1Gi}
  accessModes: ["ReadWriteOnce"]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: audit-local
  local: {path: /tmp}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: topology.kubernetes.io/zone, operator: In, values: ["zone-b"]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: ["ReadWriteOnce"]
  storageClassName: audit-local
  volumeName: ` + pv + `
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: db
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: db
      image: busybox-local:v1
      imagePullPolicy: Never
      command: ["sleep", "3600"]
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: data}
`
	// The claim is bound before the pod exists, as in a real incident:
	// the scheduler then tries the pod against the volume's node affinity
	// at once (a pod found unschedulable on an unbound claim may wait for
	// its next retry longer than a test does).
	podAt := strings.Index(manifest, "---\napiVersion: v1\nkind: Pod")
	volumes, podManifest := manifest[:podAt], manifest[podAt+4:]
	t.Cleanup(func() { env.RunKubectl("delete", "pv", pv, "--wait=false") })
	for i, m := range []string{volumes, podManifest} {
		f := filepath.Join(t.TempDir(), fmt.Sprintf("pv-%d.yaml", i))
		if err := os.WriteFile(f, []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		env.Kubectl(t, "apply", "-n", ns, "-f", f)
		if i > 0 {
			break
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			phase, _, _ := env.RunKubectl("get", "pvc", "data", "-n", ns, "-o", "jsonpath={.status.phase}")
			if phase == "Bound" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("claim data is %q after 90s, want Bound", phase)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	libraryWait(t, env, ns, "db", "Unschedulable", 60*time.Second, libraryUnschedulable)

	r := libraryRun(t, env, "pending", "pod=db", "namespace="+ns)
	r.verdictSays(t, "persistentvolume/"+pv+" spec.nodeAffinity.required: topology.kubernetes.io/zone in (zone-b)",
		"claim data is bound to a volume no node can use")
	r.mustSay(t, "the volume of claim data can only be used on nodes matching it, and no node does")
}

// libraryApplyText applies a manifest given as text in the namespace.
func libraryApplyText(t *testing.T, env *harness.Env, ns, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	env.Kubectl(t, "apply", "-n", ns, "-f", f)
}

// TestLibraryCrashloopStartError: a command that is not in the image
// (htpd for httpd). The runtime refuses to start it (StartError, exit 128,
// startedAt 1970): the runbook gave a generic explanation and said it had
// run for 20788 days; it must name command[0] and the runtime's words.
func TestLibraryCrashloopStartError(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "audit-crash-typo")
	libraryApplyText(t, env, ns, `apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox-local:v1
      imagePullPolicy: Never
      command: ["htpd", "-f", "-p", "8080"]
`)
	libraryWait(t, env, ns, "typo", "CrashLoopBackOff", 120*time.Second, libraryCrashLooping("app"))
	r := libraryRun(t, env, "crashloop", "pod=typo", "namespace="+ns)
	r.verdictSays(t, "pod/typo spec.containers[0].command[0]: htpd", `exec: "htpd": executable file not found in $PATH`,
		"fix: correct the program name")
	if strings.Contains(r.text(), "after running") {
		t.Errorf("the run gives a run time for a container that never started:\n%s", r.text())
	}
}

// TestLibraryCronJobFailingRunsNoHistory: a CronJob every minute whose Job
// fails at once, with failedJobsHistoryLimit 0: no failed Job is kept to
// look at. The runbook said it "runs" with no problem found; it must read
// the CronJob's status (scheduled, none active, none succeeded) and name the
// history limit.
func TestLibraryCronJobFailingRunsNoHistory(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "audit-cron-nohist")
	libraryApplyText(t, env, ns, `apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-export
spec:
  schedule: "* * * * *"
  failedJobsHistoryLimit: 0
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
            - name: export
              image: busybox-local:v1
              imagePullPolicy: Never
              command: ["sh", "-c", "echo 'error: bucket not found'; exit 2"]
`)
	// Wait for a run that has failed and gone, away from the next minute's run.
	deadline := time.Now().Add(150 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "cronjob", "nightly-export", "-n", ns, "-o", "jsonpath={.status.lastScheduleTime}/{.status.active}")
		jobs, _, _ := env.RunKubectl("get", "jobs", "-n", ns, "-o", "name")
		sec := time.Now().Second()
		if strings.HasSuffix(out, "/") && out != "/" && strings.TrimSpace(jobs) == "" && sec >= 15 && sec <= 45 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed run of nightly-export was deleted: status %q, jobs %q", out, jobs)
		}
		time.Sleep(time.Second)
	}
	r := libraryRun(t, env, "cronjob-not-running", "cronjob=nightly-export", "namespace="+ns)
	r.verdictSays(t, "its runs are created but fail", "last succeeded never",
		"cronjob/nightly-export spec.failedJobsHistoryLimit: 0 keeps no failed Job to look at")
	if strings.Contains(r.verdict, "no suspend, schedule or concurrency problem found") {
		t.Errorf("the verdict calls failing runs fine: %s", r.verdict)
	}
}
