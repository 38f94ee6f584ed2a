package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/trace"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/test/harness"
)

// e2ePod creates a pod on the test cluster and waits until it is Ready.
// With one command it is made by kubectl run (its container is named like
// the pod); with several, each container i is "c<i>" running commands[i].
func e2ePod(t testing.TB, env *harness.Env, commands ...string) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "kdiag-findpid-" + hex.EncodeToString(b)
	if len(commands) == 1 {
		env.Kubectl(t, "run", name, "--image=busybox-local:v1", "--image-pull-policy=Never", "--restart=Never",
			"--overrides", `{"spec":{"nodeName":"`+env.NodeName+`","terminationGracePeriodSeconds":0}}`, "--", "sh", "-c", commands[0])
	} else {
		var y strings.Builder
		y.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + env.NodeName +
			"\n  terminationGracePeriodSeconds: 0\n  containers:\n")
		for i, c := range commands {
			y.WriteString("  - name: c" + strconv.Itoa(i) + "\n    image: busybox-local:v1\n    imagePullPolicy: Never\n" +
				"    command: [\"sh\", \"-c\", " + strconv.Quote(c) + "]\n")
		}
		f := filepath.Join(t.TempDir(), "pod.yaml")
		if err := os.WriteFile(f, []byte(y.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		env.Kubectl(t, "apply", "-f", f)
	}
	t.Cleanup(func() { env.RunKubectl("delete", "pod", name, "--grace-period=0", "--force", "--wait=false") })
	env.Kubectl(t, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=120s")
	return name
}

// crictl runs the cluster's crictl against its runtime.
func crictl(t testing.TB, env *harness.Env, args ...string) string {
	t.Helper()
	bin := filepath.Join(env.BinDir, "crictl")
	out, err := exec.Command(bin, append([]string{"--runtime-endpoint", env.RuntimeEndpoint}, args...)...).Output()
	if err != nil {
		t.Fatalf("crictl %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func crictlPID(t testing.TB, env *harness.Env, id string) int {
	t.Helper()
	pid, err := strconv.Atoi(crictl(t, env, "inspect", "--output", "go-template", "--template", "{{.info.pid}}", id))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestFindPIDInCluster(t *testing.T) {
	env := harness.Cluster(t)
	ctx := context.Background()
	single := e2ePod(t, env, "exec sleep 3600")
	multi := e2ePod(t, env, "exec sleep 3601", "exec sleep 3602")

	res, err := findPID(ctx, findPIDQuery{Pod: single, Namespace: "default"}, env.RuntimeEndpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := crictlPID(t, env, res.ContainerID); res.PID != want || res.PID <= 0 {
		t.Errorf("find_pid pid %d, crictl inspect says %d", res.PID, want)
	}
	if res.Container != single || res.Pod != single || res.Namespace != "default" || res.State != "running" ||
		res.Source != "cri" || !strings.HasPrefix(res.Runtime, "containerd ") || res.Image == "" || res.StartedAt == "" {
		t.Errorf("result %+v", res)
	}
	if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(res.PID) + "/cmdline"); string(cmdline) != "sleep\x003600\x00" {
		t.Errorf("/proc/%d/cmdline = %q, want sleep 3600", res.PID, cmdline)
	}
	theirs, err1 := os.Readlink(res.Namespaces["pid"])
	ours, err2 := os.Readlink("/proc/self/ns/pid")
	if err1 != nil || err2 != nil || theirs == ours {
		t.Errorf("pid namespace of the container %q (%v) vs ours %q (%v): want different", theirs, err1, ours, err2)
	}

	// By container ID prefix, and without a runtime through /proc/*/cgroup.
	byID, err := findPID(ctx, findPIDQuery{ContainerID: res.ContainerID[:13]}, env.RuntimeEndpoint, "")
	if err != nil || byID.PID != res.PID || byID.Pod != single {
		t.Errorf("by ID prefix: %+v, %v", byID, err)
	}
	byCgroup, err := findPIDByCgroup(res.ContainerID, &criNoEndpointError{})
	if err != nil || byCgroup.PID != res.PID {
		t.Errorf("by cgroup scan: %+v, %v; want pid %d", byCgroup, err, res.PID)
	}

	// Two containers: the name is needed, and selects the right one.
	_, err = findPID(ctx, findPIDQuery{Pod: multi, Namespace: "default"}, env.RuntimeEndpoint, "")
	if want := `find_pid: pod "default/` + multi + `" has 2 containers, pass container= (containers: c0, c1)`; err == nil || err.Error() != want || engine.KindOf(err) != engine.KindInvalid {
		t.Errorf("err = %v, want %s", err, want)
	}
	c1, err := findPID(ctx, findPIDQuery{Pod: multi, Namespace: "default", Container: "c1"}, env.RuntimeEndpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	sandbox := crictl(t, env, "pods", "--name", multi, "-q")
	ids := strings.Fields(crictl(t, env, "ps", "--pod", sandbox, "--name", "c1", "-q"))
	if len(ids) != 1 || c1.ContainerID != ids[0] || c1.SandboxID != sandbox || c1.PID != crictlPID(t, env, ids[0]) {
		t.Errorf("container c1: %+v; crictl: sandbox %s containers %v", c1, sandbox, ids)
	}
	if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(c1.PID) + "/cmdline"); string(cmdline) != "sleep\x003602\x00" {
		t.Errorf("c1 cmdline = %q", cmdline)
	}
	_, err = findPID(ctx, findPIDQuery{Pod: multi, Namespace: "default", Container: "c9"}, env.RuntimeEndpoint, "")
	if engine.KindOf(err) != engine.KindNotFound || !strings.HasSuffix(err.Error(), `has no container "c9" (containers: c0, c1)`) {
		t.Errorf("no such container: %v", err)
	}
	_, err = findPID(ctx, findPIDQuery{Pod: "no-such-pod", Namespace: "default"}, env.RuntimeEndpoint, "")
	if engine.KindOf(err) != engine.KindNotFound || !strings.HasPrefix(err.Error(), `find_pid: pod "default/no-such-pod" not found on containerd `) {
		t.Errorf("no such pod: %v", err)
	}
}

func TestFindPIDExitedContainerInCluster(t *testing.T) {
	env := harness.Cluster(t)
	// c1 exits at once and is restarted with back-off; c0 keeps the pod alive.
	name := "kdiag-findpid-exit-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	f := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(f, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: "+name+"\nspec:\n  nodeName: "+env.NodeName+
		"\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n"+
		"  - {name: c0, image: busybox-local:v1, imagePullPolicy: Never, command: [sleep, \"3600\"]}\n"+
		"  - {name: c1, image: busybox-local:v1, imagePullPolicy: Never, command: [sh, -c, \"exit 7\"]}\n"), 0o644)
	env.Kubectl(t, "apply", "-f", f)
	t.Cleanup(func() { env.RunKubectl("delete", "pod", name, "--grace-period=0", "--force", "--wait=false") })
	env.Kubectl(t, "wait", "--for=jsonpath={.status.containerStatuses[?(@.name==\"c1\")].state.terminated.exitCode}=7", "pod/"+name, "--timeout=120s")
	_, err := findPID(context.Background(), findPIDQuery{Pod: name, Namespace: "default", Container: "c1"}, env.RuntimeEndpoint, "")
	if engine.KindOf(err) != engine.KindGone || !strings.Contains(err.Error(), "state exited, exit code 7") {
		t.Errorf("exited container: err = %v (kind %s)", err, engine.KindOf(err))
	}
}

// TestFindPIDRunbookInCluster runs testdata/find_pid.star through the
// engine, the runtime endpoint coming from the --runtime-endpoint default.
func TestFindPIDRunbookInCluster(t *testing.T) {
	env := harness.Cluster(t)
	pod := e2ePod(t, env, "exec sleep 3600")
	res := engine.Run(context.Background(), "testdata/find_pid.star", engine.Options{
		Specs:  Specs(func() Endpoints { return Endpoints{Flag: env.RuntimeEndpoint} }),
		Params: map[string]any{"pod": pod},
	})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Backtrace)
	}
	var verdict string
	for _, e := range res.Events {
		if e.Type == transcript.TypeVerdict {
			verdict = e.Summary + e.Message
		}
	}
	ids := strings.Fields(crictl(t, env, "ps", "--pod", crictl(t, env, "pods", "--name", pod, "-q"), "-q"))
	if len(ids) != 1 {
		t.Fatalf("crictl ps: %v", ids)
	}
	pid := crictlPID(t, env, ids[0])
	want := "pod default/" + pod + " container " + pod + " runs as host pid " + strconv.Itoa(pid) + " on containerd (ns /proc/" + strconv.Itoa(pid) + "/ns/pid)"
	if verdict != want {
		t.Errorf("verdict %q\nwant    %q", verdict, want)
	}
}

// BenchmarkFindPID compares one find_pid with what it replaces: three
// crictl invocations (pods --name, ps --pod, inspect), in the same run.
func BenchmarkFindPID(b *testing.B) {
	env := harness.Cluster(b)
	pod := e2ePod(b, env, "exec sleep 3600")
	ctx := context.Background()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := findPID(ctx, findPIDQuery{Pod: pod, Namespace: "default"}, env.RuntimeEndpoint, "")
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)

		start = time.Now()
		sandbox := crictl(b, env, "pods", "--name", pod, "--namespace", "default", "-q")
		id := crictl(b, env, "ps", "--pod", sandbox, "-q")
		pid := crictlPID(b, env, id)
		theirs += time.Since(start)
		if pid != res.PID {
			b.Fatalf("find_pid %d, crictl %d", res.PID, pid)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(ours.Microseconds())/1e3/n, "find_pid-ms")
	b.ReportMetric(float64(theirs.Microseconds())/1e3/n, "crictl-ms")
	b.ReportMetric(float64(ours)/float64(theirs), "find_pid/crictl")
}

// TestFindPIDThenStraceInCluster is the node-side workflow: find a pod's
// process through the CRI, then trace it with strace_sample. The container
// checks a missing path in its own mount namespace; the trace reports the
// path as the container sees it.
func TestFindPIDThenStraceInCluster(t *testing.T) {
	env := harness.Cluster(t)
	pod := e2ePod(t, env, "while :; do [ -e /etc/kdiag-missing.conf ]; sleep 0.05; done")
	res, err := findPID(context.Background(), findPIDQuery{Pod: pod, Namespace: "default"}, env.RuntimeEndpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	s := trace.Spec()
	v, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: engine.Args{"pid": int64(res.PID), "duration": "1s", "follow_forks": true}})
	if err != nil {
		t.Fatal(err)
	}
	tr := v.(*trace.Result)
	var missing *trace.File
	for i, f := range tr.Files {
		if f.Path == "/etc/kdiag-missing.conf" {
			missing = &tr.Files[i]
		}
	}
	if missing == nil || len(missing.Results) != 1 || missing.Results[0] != "ENOENT" || missing.Calls < 5 {
		t.Errorf("files entry for the missing path: %+v (files %+v)", missing, tr.Files)
	}
	if !tr.Detached || tr.Threads < 2 { // the shell and its sleep children
		t.Errorf("detached %v threads %d", tr.Detached, tr.Threads)
	}
	if st, _ := os.ReadFile("/proc/" + strconv.Itoa(res.PID) + "/status"); !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Errorf("container process still traced:\n%s", st)
	}
}
