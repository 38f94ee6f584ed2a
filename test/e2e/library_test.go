package e2e

// The runbook library end to end: each test reproduces an incident of
// examples/<runbook>/ in a namespace of its own, runs the runbook against it
// on the local cluster and checks that its verdict and findings name the
// cause. The tests run in parallel: most of their time is spent waiting for
// the kubelet (restarts, back-off, pulls).

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
	corev1 "k8s.io/api/core/v1"
)

// TestLibraryCrashloop: a worker that exits 3 on a bad ConfigMap value, and
// a container OOMKilled under its memory limit.
func TestLibraryCrashloop(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-crashloop")
	libraryApply(t, env, ns, "examples/crashloop/manifests.yaml", "examples/crashloop/oomkilled.yaml")
	libraryWait(t, env, ns, "orders-worker", "a restart after exit code 3", 90*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "worker")
		return s != nil && s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode == 3
	})
	r := libraryRun(t, env, "crashloop", "pod=orders-worker", "namespace="+ns)
	r.verdictSays(t, "exit code 3", "the application's own exit code", `fatal: unknown MODE "turbo"`,
		"configmap/orders-settings data[settings.env]: MODE=turbo (named in its log)", "fix: correct that value")
	r.mustSay(t, "ConfigMap orders-settings (volume settings at /etc/orders) was created with the pod")
	if strings.Contains(r.text(), "a recent configuration change") {
		t.Errorf("configuration created in the same apply as the pod is called a recent change:\n%s", r.text())
	}
	if b, err := os.ReadFile(r.transcript); err != nil || strings.Contains(string(b), "not-a-real-password-but-redact-me") {
		t.Errorf("the transcript holds the Secret's value (or cannot be read: %v)", err)
	}

	libraryWait(t, env, ns, "thumbnailer", "an OOM kill", 90*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "thumbnailer")
		return s != nil && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.Reason == "OOMKilled"
	})
	r = libraryRun(t, env, "crashloop", "pod=thumbnailer", "namespace="+ns)
	r.verdictSays(t, "OOMKilled", "limit 24Mi", "pod/thumbnailer spec.containers[0].resources.limits.memory: 24Mi")
	r.mustSay(t, "CRITICAL pod/thumbnailer spec.containers[0].resources.limits.memory: 24Mi: thumbnailer was killed for using more memory than its limit (24Mi)")
}

// TestLibraryCrashloopOptionalKey: a Deployment's optional configMapKeyRef
// names a key the ConfigMap has under another name; the variable is empty
// and the app exits 1. A sidecar runs beside it.
func TestLibraryCrashloopOptionalKey(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-crash-key")
	libraryApply(t, env, ns, "examples/crashloop/optional-key.yaml")
	pod := libraryPodOf(t, env, ns, "app=mailer")
	libraryWait(t, env, ns, pod, "a restart after exit code 1", 90*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "mailer")
		return s != nil && s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode == 1
	})
	r := libraryRun(t, env, "crashloop", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "container mailer of pod", "deployment/mailer spec.template.spec.containers[1].env[1].valueFrom.configMapKeyRef.key: smtp-host",
		"ConfigMap mailer-config has no such key (it has smtp_host)", "SMTP_HOST is empty", "fix: set the key to smtp_host")
	if strings.Contains(r.text(), "a recent configuration change") || strings.Contains(r.text(), "log-forwarder") {
		t.Errorf("the ConfigMap of the same apply is called a recent change, or the sidecar is blamed:\n%s", r.text())
	}
}

// TestLibraryImagePull: an unresolvable private registry with a missing
// pull secret, and an image the node lacks under imagePullPolicy Never.
func TestLibraryImagePull(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-image-pull")
	libraryApply(t, env, ns, "examples/image-pull/manifests.yaml")
	libraryWait(t, env, ns, "catalog-api", "a pull failure", 90*time.Second, libraryWaiting("api", "ErrImagePull", "ImagePullBackOff"))
	r := libraryRun(t, env, "image-pull", "pod=catalog-api", "namespace="+ns)
	r.verdictSays(t, "registry host registry.example.com does not resolve from the node", "pull secret regcred is missing")
	r.mustSay(t, "registry.example.com/shop/catalog-api:v2.4.1")

	if strings.Contains(r.text(), "CRITICAL pull secret") {
		t.Errorf("a missing pull secret is called critical although the registry never asked for credentials:\n%s", r.text())
	}

	libraryWait(t, env, ns, "report-builder", "ErrImageNeverPull", 60*time.Second, libraryWaiting("log-shipper", "ErrImageNeverPull"))
	r = libraryRun(t, env, "image-pull", "pod=report-builder", "namespace="+ns)
	r.verdictSays(t, "image kdiag-log-shipper:v3 is not on node "+env.NodeName+" and pod/report-builder spec.containers[1].imagePullPolicy: Never")
	if strings.Contains(r.text(), "builder:") {
		t.Errorf("the running container is blamed too:\n%s", r.text())
	}
}

// TestLibraryImagePullAnonymousRegistry: a real anonymous registry on the
// node's loopback; a Deployment rolled out a tag it does not have, a
// sidecar names a repository it does not have, a pod's image index has
// no variant for the node's platform. containerd says "not found" for all
// three; the registry's answer tells them apart, and no pull secret is
// blamed.
func TestLibraryImagePullAnonymousRegistry(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	libraryRegistry(t)
	ns := namespace(t, env, "lib-image-anon")
	libraryApply(t, env, ns, "examples/image-pull/anonymous.yaml")
	pod := libraryPodOf(t, env, ns, "app=orders-api")
	libraryWait(t, env, ns, pod, "a pull failure", 90*time.Second, libraryWaiting("api", "ErrImagePull", "ImagePullBackOff"))
	r := libraryRun(t, env, "image-pull", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "deployment/orders-api spec.template.spec.containers[0].image: 127.0.0.1:35017/shop/orders-api:v3",
		"MANIFEST_UNKNOWN", "has no tag v3", "set the tag to one the registry has (v1, v2)")
	r.mustSay(t, "none is needed")
	if strings.Contains(r.text(), "CRITICAL pull secret") || strings.Contains(r.text(), "CRITICAL no pull secret") {
		t.Errorf("a pull secret is blamed for an anonymous registry:\n%s", r.text())
	}

	libraryWait(t, env, ns, "orders-metrics", "a pull failure", 90*time.Second, libraryWaiting("exporter", "ErrImagePull", "ImagePullBackOff"))
	r = libraryRun(t, env, "image-pull", "pod=orders-metrics", "namespace="+ns)
	r.verdictSays(t, "pod/orders-metrics spec.containers[1].image: 127.0.0.1:35017/shop/order-metrics:v1", "NAME_UNKNOWN",
		"repository 127.0.0.1:35017/shop/order-metrics does not exist", "correct the repository name")
	if strings.Contains(r.text(), "app:") || strings.Contains(r.text(), "CRITICAL pull secret") {
		t.Errorf("the running container, or a pull secret, is blamed:\n%s", r.text())
	}

	// An index with a linux/arm64 variant only: containerd's message ends in
	// "not found", but the registry serves the image; the platform is missing.
	libraryWait(t, env, ns, "orders-arm", "a pull failure", 90*time.Second, libraryWaiting("api", "ErrImagePull", "ImagePullBackOff"))
	r = libraryRun(t, env, "image-pull", "pod=orders-arm", "namespace="+ns)
	r.verdictSays(t, "pod/orders-arm spec.containers[0].image: 127.0.0.1:35017/shop/orders-arm:v1: the image is built for linux/arm64, not for node "+env.NodeName)
	if strings.Contains(r.text(), "no such image") || strings.Contains(r.text(), "has no tag") {
		t.Errorf("an image the registry serves is called missing:\n%s", r.text())
	}
}

// TestLibraryPending: too much CPU, a node label no node has, an unbound
// claim.
func TestLibraryPending(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-pending")
	libraryApply(t, env, ns, "examples/pending/manifests.yaml")
	for pod, want := range map[string][]string{
		"batch-import": {"Insufficient cpu: the pod requests 64, the node's allocatable is"},
		"ledger-db":    {"nodeSelector disktype=ssd (node has no disktype label)"},
		"uploads":      {"PVC uploads-data is Pending", "no persistent volumes available for this claim"},
	} {
		libraryWait(t, env, ns, pod, "Unschedulable", 60*time.Second, libraryUnschedulable)
		r := libraryRun(t, env, "pending", "pod="+pod, "namespace="+ns)
		r.verdictSays(t, append(want, "pod "+ns+"/"+pod+" cannot be scheduled")...)
	}
}

// TestLibraryPendingAntiAffinity: two replicas with a required pod
// anti-affinity on the hostname, one node: the second replica is Pending
// because of the term, although the node has room.
func TestLibraryPendingAntiAffinity(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-pending-aa")
	libraryApply(t, env, ns, "examples/pending/anti-affinity.yaml")
	var pending string
	deadline := time.Now().Add(90 * time.Second)
	for pending == "" && time.Now().Before(deadline) {
		out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "app=search-api", "--field-selector=status.phase=Pending", "-o", "jsonpath={.items[*].metadata.name}")
		if f := strings.Fields(out); len(f) == 1 {
			pending = f[0]
		}
		time.Sleep(time.Second)
	}
	if pending == "" {
		t.Fatal("no replica of search-api stayed Pending")
	}
	libraryWait(t, env, ns, pending, "Unschedulable", 60*time.Second, libraryUnschedulable)
	r := libraryRun(t, env, "pending", "pod="+pending, "namespace="+ns)
	r.verdictSays(t, "deployment/search-api spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]: labelSelector app=search-api, topologyKey kubernetes.io/hostname",
		"excludes node(s) "+env.NodeName, "fix: run fewer replicas than there are kubernetes.io/hostname domains")
	if strings.Contains(r.verdict, "look able to take it") || strings.Contains(r.verdict, "may not have retried") {
		t.Errorf("the verdict calls the node able to take the pod:\n%s", r.verdict)
	}
}

// TestLibraryLivenessRestarts: a healthy app killed again and again by a
// liveness probe on a path it does not serve.
func TestLibraryLivenessRestarts(t *testing.T) {
	t.Parallel()
	env := seedCluster(t) // imports kdiag-broken-app:v1
	ns := namespace(t, env, "lib-liveness")
	libraryApply(t, env, ns, "examples/liveness-restarts/manifests.yaml")
	libraryWait(t, env, ns, "inventory", "a liveness kill", 90*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "inventory")
		return s != nil && s.RestartCount >= 1
	})
	r := libraryRun(t, env, "liveness-restarts", "pod=inventory", "namespace="+ns, "wait=60s")
	r.verdictSays(t, "killed by its liveness probe", "the app does not serve /livez (404)", "/healthz")
	r.mustSay(t, "HTTP 404", "answers 404", "/healthz answers 200")
	r.verdictSays(t, "pod/inventory spec.containers[0].livenessProbe.httpGet.path: /livez", "fix: set livenessProbe.httpGet.path to /healthz")
}

// TestLibraryLivenessSlowEndpoint: a StatefulSet (with a sidecar) whose
// health endpoint takes ~2s under the default 1s probe timeout; the runbook
// measures the real latency with a long timeout.
func TestLibraryLivenessSlowEndpoint(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-liveness-slow")
	libraryApply(t, env, ns, "examples/liveness-restarts/slow-health.yaml")
	libraryWait(t, env, ns, "ledger-0", "a liveness kill", 120*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "ledger")
		return s != nil && s.RestartCount >= 1
	})
	r := libraryRun(t, env, "liveness-restarts", "pod=ledger-0", "namespace="+ns, "wait=60s")
	r.verdictSays(t, "container ledger of pod", "but the probe gives up after 1s",
		"statefulset/ledger spec.template.spec.containers[1].livenessProbe.timeoutSeconds: 1", "fix: raise livenessProbe.timeoutSeconds to")
	for _, f := range r.findings {
		if strings.HasPrefix(f, "CRITICAL") && strings.Contains(f, "in ") && strings.Contains(f, "ms, longer than") {
			return
		}
	}
	t.Errorf("no critical finding with the measured latency:\n%s", r.text())
}

// TestLibraryDNSFromPod: the local cluster's missing cluster DNS, and a
// loopback stub nameserver nothing serves inside the pod.
func TestLibraryDNSFromPod(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-dns")
	libraryApply(t, env, ns, "examples/dns-from-pod/manifests.yaml")
	libraryWait(t, env, ns, "web-client", "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "dns-from-pod", "pod=web-client", "namespace="+ns)
	r.verdictSays(t, "cannot resolve kubernetes.default.svc.cluster.local", "answer NXDOMAIN", "no kube-dns Service exists",
		"node/"+env.NodeName+" kubeletConfig.clusterDNS: (unset")

	libraryWait(t, env, ns, "stub-client", "Running", 60*time.Second, libraryRunning)
	r = libraryRun(t, env, "dns-from-pod", "pod=stub-client", "namespace="+ns)
	r.verdictSays(t, "no nameserver answers from inside the pod (127.0.0.53)", "pod/stub-client spec.dnsConfig.nameservers[0]: 127.0.0.53")
	r.mustSay(t, "nothing listens on port 53 inside the pod's network namespace", "dnsPolicy None: the pod does not use the cluster DNS")
	if strings.Contains(r.text(), "kube-dns Service") {
		t.Errorf("kube-dns is blamed for a pod with dnsPolicy None:\n%s", r.text())
	}
}

// TestLibraryPortNotListening: a probe on 3000, a server on 8080; and a
// server on 127.0.0.1:3000 only, probed on the pod IP.
func TestLibraryPortNotListening(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-port")
	libraryApply(t, env, ns, "examples/port-not-listening/manifests.yaml")
	libraryWait(t, env, ns, "greeter", "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "port-not-listening", "pod=greeter", "namespace="+ns)
	r.verdictSays(t, "the readiness probe checks port 3000 but nothing listens there", "listens on 8080", "where the probe answers 200")
	r.mustSay(t, "container greeter declares port 3000 (http) but nothing listens on it")

	libraryWait(t, env, ns, "admin-ui", "Running", 60*time.Second, libraryRunning)
	r = libraryRun(t, env, "port-not-listening", "pod=admin-ui", "namespace="+ns)
	p, err := libraryPod(env, ns, "admin-ui")
	if err != nil {
		t.Fatal(err)
	}
	r.verdictSays(t, "the app listens on 127.0.0.1:3000 only; the readiness probe connects to "+p.Status.PodIP,
		"pod/admin-ui spec.containers[0].command[4]: 127.0.0.1:3000")

	// case 3: the bind address comes from an envFrom ConfigMap; the probed container is the second one.
	libraryApply(t, env, ns, "examples/port-not-listening/envfrom.yaml")
	pod := libraryPodOf(t, env, ns, "app=catalog-web")
	libraryWait(t, env, ns, pod, "Running", 60*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	r = libraryRun(t, env, "port-not-listening", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "container web of pod", "the app listens on 127.0.0.1:8080 only",
		"configmap/catalog-web-env data.LISTEN_ADDR: 127.0.0.1:8080 (via deployment/catalog-web spec.template.spec.containers[1].envFrom[0].configMapRef)",
		"fix: set LISTEN_ADDR in ConfigMap catalog-web-env to listen on 0.0.0.0:8080")
}

// TestLibraryConfigFileMissing: the app wants config.yaml, the ConfigMap
// has config.yml; the fix adds the key and undo removes it.
func TestLibraryConfigFileMissing(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	libraryConfigApp(t, env)
	ns := namespace(t, env, "lib-config")
	libraryApply(t, env, ns, "examples/config-file-missing/manifests.yaml")
	libraryWait(t, env, ns, "billing", "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "config-file-missing", "pod=billing", "namespace="+ns)
	r.verdictSays(t, "/etc/app/config.yaml is missing (/etc/app holds config.yml instead; /etc/app is ConfigMap billing-config's volume",
		"fix=True would add key config.yaml")
	r.mustSay(t, "/config/config.yaml")

	r = libraryRun(t, env, "config-file-missing", "pod=billing", "namespace="+ns, "fix=true", "--yes")
	r.verdictSays(t, "added key config.yaml (a copy of config.yml) to ConfigMap billing-config", "the app now opens /etc/app/config.yaml")
	if data := env.Kubectl(t, "get", "configmap", "billing-config", "-n", ns, "-o", "jsonpath={.data}"); !strings.Contains(data, "config.yaml") {
		t.Fatalf("the ConfigMap has no key config.yaml after the fix: %s", data)
	}
	out, errOut, code := kdiag(t, env, "undo", "--yes", r.transcript)
	if code != 0 || !strings.Contains(out, "configmap "+ns+"/billing-config: reverted") {
		t.Fatalf("undo exit %d:\n%s\n%s", code, out, errOut)
	}
	if data := env.Kubectl(t, "get", "configmap", "billing-config", "-n", ns, "-o", "jsonpath={.data}"); strings.Contains(data, "config.yaml") {
		t.Fatalf("undo left key config.yaml: %s", data)
	}
}

// TestLibraryConfigFileMissingItems: a Deployment whose ConfigMap volume
// lists items and projects key config.yaml as config.yml; the app runs in
// the second container.
func TestLibraryConfigFileMissingItems(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	libraryConfigApp(t, env)
	ns := namespace(t, env, "lib-config-items")
	libraryApply(t, env, ns, "examples/config-file-missing/items.yaml")
	pod := libraryPodOf(t, env, ns, "app=invoicer")
	libraryWait(t, env, ns, pod, "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "config-file-missing", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "/etc/app/config.yaml is missing", "deployment/invoicer spec.template.spec.volumes[0].configMap.items[0].path: config.yml",
		"the volume projects only its items: config.yaml -> config.yml", "fix: set volumes[0].configMap.items[0].path to config.yaml")
	r.mustSay(t, "sampled first, no missing file: metrics")
	if strings.Contains(r.verdict, "fix=True would add key") {
		t.Errorf("the runbook offers to add a key the ConfigMap already has:\n%s", r.verdict)
	}
}

// TestLibrarySyscallStorm: a busy-wait on a missing file, and a fork loop.
func TestLibrarySyscallStorm(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-storm")
	libraryApply(t, env, ns, "examples/syscall-storm/manifests.yaml")
	libraryWait(t, env, ns, "migrator", "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "syscall-storm", "pod=migrator", "namespace="+ns)
	r.verdictSays(t, "it checks for /tmp/schema.ready over and over (newfstatat, ENOENT every time) without sleeping", "newfstatat 100% of them")
	env.RunKubectl("delete", "pod", "migrator", "-n", ns, "--wait=false", "--grace-period=0")

	libraryWait(t, env, ns, "log-tailer", "Running", 60*time.Second, libraryRunning)
	r = libraryRun(t, env, "syscall-storm", "pod=log-tailer", "namespace="+ns)
	r.verdictSays(t, "new processes a second", "a loop that runs a command each time round")
	env.RunKubectl("delete", "pod", "log-tailer", "-n", ns, "--wait=false", "--grace-period=0")

	// case 3: the app container idles; its sidecar sits at its CPU limit.
	libraryApply(t, env, ns, "examples/syscall-storm/sidecar.yaml")
	pod := libraryPodOf(t, env, ns, "app=storefront")
	libraryWait(t, env, ns, pod, "Running", 60*time.Second, libraryRunning)
	r = libraryRun(t, env, "syscall-storm", "pod="+pod, "namespace="+ns)
	r.verdictSays(t, "container health-reporter of pod", "container health-reporter's limit: 200m, so it is throttled",
		"deployment/storefront spec.template.spec.containers[1].command")
	r.mustSay(t, "CRITICAL deployment/storefront spec.template.spec.containers[1].resources.limits.cpu: 200m", "CPU per container over 1s: health-reporter")
	if strings.Contains(r.verdict, "not CPU-hot") {
		t.Errorf("the pod is called not CPU-hot while its sidecar is at its limit:\n%s", r.verdict)
	}
}

// TestLibraryServiceEndpoints: a selector no pod matches (Deployment), a
// targetPort nothing listens on (bare pod with a sidecar), a named
// targetPort no container declares (StatefulSet).
func TestLibraryServiceEndpoints(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-svc")
	libraryApply(t, env, ns, "examples/service-endpoints/manifests.yaml")
	// 120s: on a loaded machine the kubelet took over a minute to create these sandboxes.
	libraryWait(t, env, ns, "cart", "Running", 120*time.Second, libraryRunning)
	libraryWait(t, env, ns, "payments-0", "Running", 120*time.Second, libraryRunning)
	libraryWait(t, env, ns, libraryPodOf(t, env, ns, "app=checkout-v2"), "Running", 120*time.Second, libraryRunning)

	r := libraryRun(t, env, "service-endpoints", "service=checkout", "namespace="+ns)
	r.verdictSays(t, "service "+ns+"/checkout has no endpoints", "service/checkout spec.selector.app: checkout matches no pod",
		"have app=checkout-v2", "fix: set spec.selector.app to checkout-v2")

	r = libraryRun(t, env, "service-endpoints", "service=cart", "namespace="+ns)
	r.verdictSays(t, "service/cart spec.ports[0].targetPort: 80: the pods listen on 8080, not 80", "fix: set spec.ports[0].targetPort to 8080")

	r = libraryRun(t, env, "service-endpoints", "service=payments", "namespace="+ns)
	r.verdictSays(t, "service/payments spec.ports[0].targetPort: http names a port no selected pod declares (they have api web/8080)",
		"fix: set spec.ports[0].targetPort to web")
}

// TestLibraryOOMKilled: a Deployment's container (beside a sidecar) whose
// working set grows to its 48Mi limit; the runbook measures it from the
// memory cgroup and names the limit field.
func TestLibraryOOMKilled(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-oom")
	libraryApply(t, env, ns, "examples/oomkilled/manifests.yaml")
	pod := libraryPodOf(t, env, ns, "app=resizer")
	libraryWait(t, env, ns, pod, "an OOM kill", 120*time.Second, func(p *corev1.Pod) bool {
		s := libraryStatus(p, "resizer")
		return s != nil && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.Reason == "OOMKilled"
	})
	r := libraryRun(t, env, "oomkilled", "pod="+pod, "namespace="+ns, "wait=90s", "sample=8s")
	r.verdictSays(t, "container resizer is OOMKilled", "its working set grows", "until it reaches the 48Mi limit",
		"deployment/resizer spec.template.spec.containers[1].resources.limits.memory: 48Mi")
	r.mustSay(t, "measured ")
	if strings.Contains(r.text(), "container metrics") {
		t.Errorf("the sidecar is blamed:\n%s", r.text())
	}
}

// TestLibraryCronJobNotRunning: suspended, a schedule that never fires,
// a Forbid policy behind a Job that hangs.
func TestLibraryCronJobNotRunning(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-cron")
	libraryApply(t, env, ns, "examples/cronjob-not-running/manifests.yaml")

	r := libraryRun(t, env, "cronjob-not-running", "cronjob=nightly-report", "namespace="+ns)
	r.verdictSays(t, "cronjob/nightly-report spec.suspend: true", `"suspend":false`)

	r = libraryRun(t, env, "cronjob-not-running", "cronjob=month-end-invoices", "namespace="+ns)
	r.verdictSays(t, "cronjob/month-end-invoices spec.schedule: 0 3 30 2 * never fires (day 30 of feb does not exist)")

	// The first Job starts at the next full minute; it must have run longer than the one-minute period.
	deadline := time.Now().Add(200 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "jobs", "-n", ns, "-o", "jsonpath={.items[*].status.startTime}")
		if f := strings.Fields(out); len(f) > 0 {
			if st, err := time.Parse(time.RFC3339, f[0]); err == nil && time.Since(st) > 70*time.Second {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory-sync's first job did not run for 70s within 200s")
		}
		time.Sleep(2 * time.Second)
	}
	r = libraryRun(t, env, "cronjob-not-running", "cronjob=inventory-sync", "namespace="+ns)
	r.verdictSays(t, "cronjob/inventory-sync spec.concurrencyPolicy: Forbid while job inventory-sync-", "activeDeadlineSeconds")
}

// TestLibraryHPANotScaling: no metrics API and no CPU request (Deployment),
// min = max (StatefulSet), a scale target that does not exist.
func TestLibraryHPANotScaling(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-hpa")
	libraryApply(t, env, ns, "examples/hpa-not-scaling/manifests.yaml")
	deadline := time.Now().Add(120 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "hpa", "search", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="ScalingActive")].reason}`)
		if strings.Contains(out, "FailedGetResourceMetric") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hpa search has no FailedGetResourceMetric condition after 120s: %q", out)
		}
		time.Sleep(2 * time.Second)
	}
	r := libraryRun(t, env, "hpa-not-scaling", "hpa=search", "namespace="+ns)
	r.verdictSays(t, "horizontalpodautoscaler/search spec.metrics[0].resource.name: cpu needs the resource metrics API",
		"deployment/search spec.template.spec.containers[0].resources.requests.cpu: (unset)", "install metrics-server")

	r = libraryRun(t, env, "hpa-not-scaling", "hpa=workers", "namespace="+ns)
	r.verdictSays(t, "horizontalpodautoscaler/workers spec.maxReplicas: 3 equals minReplicas 3", "raise spec.maxReplicas above 3")

	r = libraryRun(t, env, "hpa-not-scaling", "hpa=checkout", "namespace="+ns)
	r.verdictSays(t, "horizontalpodautoscaler/checkout spec.scaleTargetRef.name: checkout-api names a Deployment that does not exist")
}

// TestLibraryRolloutStuck: revision 2 changes the readiness probe's path,
// maxUnavailable 0 holds the rollout; a PDB that allows no disruption.
func TestLibraryRolloutStuck(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-rollout")
	libraryApply(t, env, ns, "examples/rollout-stuck/manifests.yaml")
	env.Kubectl(t, "rollout", "status", "-n", ns, "deployment/pricing", "--timeout=90s")
	env.Kubectl(t, "rollout", "status", "-n", ns, "deployment/ledger", "--timeout=90s")
	libraryApply(t, env, ns, "examples/rollout-stuck/revision2.yaml")
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, _ := env.RunKubectl("get", "deployment", "pricing", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
		if out == "ProgressDeadlineExceeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pricing's rollout did not exceed its progress deadline: %q", out)
		}
		time.Sleep(2 * time.Second)
	}
	r := libraryRun(t, env, "rollout-stuck", "deployment=pricing", "namespace="+ns)
	r.verdictSays(t, "deployment/pricing spec.template.spec.containers[0].readinessProbe.httpGet.path: /status (was /hostname)",
		"running but not ready", "kubectl rollout undo deployment/pricing")

	r = libraryRun(t, env, "rollout-stuck", "deployment=ledger", "namespace="+ns)
	r.verdictSays(t, "poddisruptionbudget/ledger spec.minAvailable: 2 allows no disruption", "lower spec.minAvailable below the replicas (2)")
}

// TestLibraryAdmissionDenied: a ValidatingAdmissionPolicy (Deployment),
// Pod Security restricted (StatefulSet), a ResourceQuota (Job). Each in a
// namespace of its own so that one refusal does not hide another.
func TestLibraryAdmissionDenied(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	libraryApply(t, env, "default", "examples/admission-denied/manifests.yaml")
	t.Cleanup(func() {
		env.RunKubectl("delete", "validatingadmissionpolicybinding", "kdiag-lib-internal-images", "--ignore-not-found")
		env.RunKubectl("delete", "validatingadmissionpolicy", "kdiag-lib-internal-images", "--ignore-not-found")
	})
	failedCreate := func(ns, kind, name string) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			out, _, _ := env.RunKubectl("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate", "-o", "name")
			if strings.TrimSpace(out) != "" {
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("no FailedCreate event in %s for %s/%s", ns, kind, name)
	}

	ns := namespace(t, env, "lib-adm-vap")
	env.Kubectl(t, "label", "namespace", ns, "kdiag-lib-admission=images")
	time.Sleep(2 * time.Second) // the policy's informer sees the binding
	libraryApply(t, env, ns, "examples/admission-denied/reports.yaml")
	failedCreate(ns, "deployment", "reports")
	r := libraryRun(t, env, "admission-denied", "workload=deployment/reports", "namespace="+ns)
	r.verdictSays(t, "validatingadmissionpolicy/kdiag-lib-internal-images spec.validations[0].expression: object.spec.containers.all",
		"images must come from registry.internal/")

	ns = namespace(t, env, "lib-adm-pss")
	env.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
	libraryApply(t, env, ns, "examples/admission-denied/podsecurity.yaml")
	failedCreate(ns, "statefulset", "exporter")
	r = libraryRun(t, env, "admission-denied", "workload=statefulset/exporter", "namespace="+ns)
	r.verdictSays(t, "namespace/"+ns+" metadata.labels[pod-security.kubernetes.io/enforce]: restricted")
	r.mustSay(t, "statefulset/exporter spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation")

	ns = namespace(t, env, "lib-adm-quota")
	libraryApply(t, env, ns, "examples/admission-denied/quota.yaml")
	failedCreate(ns, "job", "batch")
	r = libraryRun(t, env, "admission-denied", "workload=job/batch", "namespace="+ns)
	r.verdictSays(t, "resourcequota/team-quota spec.hard.pods: 1 is used up")
}

// TestLibraryNetworkPolicyDenied: ingress admits only app=frontend; an
// egress deny-all. The local CNI does not enforce NetworkPolicy: the
// runbook must say the policy denies and that the connection succeeds.
func TestLibraryNetworkPolicyDenied(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-netpol")
	libraryApply(t, env, ns, "examples/networkpolicy-denied/manifests.yaml")
	for _, p := range []string{"ledger-api", "reports", "frontend", "batch"} {
		libraryWait(t, env, ns, p, "Running", 60*time.Second, libraryRunning)
	}
	r := libraryRun(t, env, "networkpolicy-denied", "client=reports", "server=service/ledger-api", "namespace="+ns)
	r.verdictSays(t, "networkpolicy/ledger-api-ingress spec.ingress[0].from[0].podSelector: podSelector app=frontend denies ingress to ledger-api",
		"the connection succeeds, so the CNI does not enforce NetworkPolicy")

	r = libraryRun(t, env, "networkpolicy-denied", "client=frontend", "server=ledger-api", "namespace="+ns)
	r.verdictSays(t, "frontend -> ledger-api:8080 is admitted by the NetworkPolicies and the connection succeeds")

	r = libraryRun(t, env, "networkpolicy-denied", "client=batch", "server=ledger-api", "namespace="+ns)
	r.verdictSays(t, "networkpolicy/batch-no-egress spec.egress: no egress rule (deny all) denies egress from batch")
}

// TestLibraryEvicted: a Deployment's container (beside a sidecar) writes
// past its ephemeral-storage limit; the kubelet evicts the pod and the
// runbook measures the replacement's growth.
func TestLibraryEvicted(t *testing.T) {
	t.Parallel()
	env := harness.Cluster(t)
	ns := namespace(t, env, "lib-evict")
	libraryApply(t, env, ns, "examples/evicted/manifests.yaml")
	var evicted string
	deadline := time.Now().Add(150 * time.Second)
	for evicted == "" {
		out, _, _ := env.RunKubectl("get", "pods", "-n", ns, "-l", "app=collector", "-o", `jsonpath={range .items[?(@.status.reason=="Evicted")]}{.metadata.name} {end}`)
		if f := strings.Fields(out); len(f) > 0 {
			evicted = f[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no collector pod was evicted within 150s")
		}
		time.Sleep(2 * time.Second)
	}
	libraryWait(t, env, ns, libraryRunningPodOf(t, env, ns, "app=collector"), "Running", 60*time.Second, libraryRunning)
	r := libraryRun(t, env, "evicted", "pod="+evicted, "namespace="+ns)
	r.verdictSays(t, "deployment/collector spec.template.spec.containers[1].resources.limits.ephemeral-storage: 16Mi",
		"container collector exceeded", "writes", "to /tmp without bound")
}
