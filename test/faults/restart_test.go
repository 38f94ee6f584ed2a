//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
)

// proc is a cluster component as it ran before it was killed: enough to
// start it again the way cluster.sh's start_bg did.
type proc struct {
	name      string
	exe       string
	argv, env []string
	dir       string
	pid       int
	stateDir  string
}

var (
	killedMu sync.Mutex
	killed   = map[string]*proc{} // killed and not yet started again
)

// restartAll starts every component a test killed and did not start again
// (TestMain calls it on an interrupt and when the tests end).
func restartAll() {
	killedMu.Lock()
	ps := make([]*proc, 0, len(killed))
	for _, p := range killed {
		ps = append(ps, p)
	}
	killedMu.Unlock()
	for _, p := range ps {
		if pid, err := p.start(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: could not start %s again: %v\n", p.name, err)
		} else {
			fmt.Fprintf(os.Stderr, "faults: started %s again (pid %d)\n", p.name, pid)
		}
	}
}

// readProc records how component NAME of the cluster in stateDir runs now.
func readProc(stateDir, name string) (*proc, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "pids", name+".pid"))
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, pid: pid, stateDir: stateDir}
	dir := fmt.Sprintf("/proc/%d/", pid)
	if p.exe, err = os.Readlink(dir + "exe"); err != nil {
		return nil, err
	}
	if p.dir, err = os.Readlink(dir + "cwd"); err != nil {
		return nil, err
	}
	split := func(f string) ([]string, error) {
		b, err := os.ReadFile(dir + f)
		if err != nil {
			return nil, err
		}
		return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
	}
	if p.argv, err = split("cmdline"); err != nil {
		return nil, err
	}
	if p.env, err = split("environ"); err != nil {
		return nil, err
	}
	if len(p.argv) == 0 || p.argv[0] == "" {
		return nil, fmt.Errorf("%s (pid %d) has no command line", name, pid)
	}
	return p, nil
}

// gone reports whether pid no longer runs (a zombie no one has reaped yet
// counts as gone).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// closeOnExec marks every inherited descriptor above stderr close-on-exec,
// so that a restarted component does not hold the test's
// /tmp/kdiag-cluster.lock (flock passes its descriptor down) or anything
// else of the test's (cluster.sh's start_bg closes its lock's fd 9 too).
func closeOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// start runs the component again as start_bg does: in its own session,
// stdin from /dev/null, output appended to its log, its pid file
// rewritten. It returns the new pid.
func (p *proc) start() (int, error) {
	killedMu.Lock()
	defer killedMu.Unlock()
	if killed[p.name] != p {
		return p.pid, nil // started already
	}
	closeOnExec()
	logf, err := os.OpenFile(filepath.Join(p.stateDir, "logs", p.name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s: restarted by the fault tests (test/faults) ====\n", time.Now().UTC().Format(time.RFC3339))
	cmd := &exec.Cmd{Path: p.exe, Args: p.argv, Env: p.env, Dir: p.dir, Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait() // reap it should it die while the tests run
	p.pid = cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(p.stateDir, "pids", p.name+".pid"), []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		return p.pid, err
	}
	delete(killed, p.name)
	return p.pid, nil
}

// killedComponent is a component the test killed: Start starts it again and waits
// until the cluster is healthy.
type killedComponent struct {
	p      *proc
	env    *harness.Env
	killed time.Time
	once   sync.Once
	// Recovery is the time from Start to a healthy cluster (set by Start).
	Recovery time.Duration
}

// kill records how component runs, kills it with SIGKILL and waits until
// it is gone. The test's cleanup starts it again should the test not.
func kill(t *testing.T, env *harness.Env, component string) *killedComponent {
	t.Helper()
	p, err := readProc(env.StateDir, component)
	if err != nil {
		t.Fatalf("%s: %v", component, err)
	}
	killedMu.Lock()
	killed[component] = p
	killedMu.Unlock()
	k := &killedComponent{p: p, env: env}
	t.Cleanup(func() { k.Start(t) })
	old := p.pid
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", component, err)
	}
	k.killed = time.Now()
	for !gone(old) {
		if time.Since(k.killed) > 10*time.Second {
			t.Fatalf("%s (pid %d) still there 10s after SIGKILL", component, old)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("killed %s (pid %d)", component, old)
	return k
}

// Start starts the component again (once) and waits, up to 3 minutes,
// until it and the cluster are healthy.
func (k *killedComponent) Start(t *testing.T) {
	k.once.Do(func() {
		t0 := time.Now()
		pid, err := k.p.start()
		if err != nil {
			t.Errorf("starting %s again: %v", k.p.name, err)
			return
		}
		if err := waitHealthy(k.env, k.p.name, 3*time.Minute); err != nil {
			t.Errorf("%s (pid %d) after its restart: %v", k.p.name, pid, err)
			return
		}
		k.Recovery = time.Since(t0)
		t.Logf("started %s again (pid %d) %s after the kill; the cluster was healthy %s after the start",
			k.p.name, pid, t0.Sub(k.killed).Round(100*time.Millisecond), k.Recovery.Round(100*time.Millisecond))
	})
}

// waitHealthy waits until component answers its own health check and
// the cluster is healthy as cluster.sh sees it: the API server ready,
// containerd answering, the node Ready.
func waitHealthy(env *harness.Env, component string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if last = componentHealthy(env, component); last == nil {
			if last = clusterHealthy(env); last == nil {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %s: %v", limit, last)
}

func componentHealthy(env *harness.Env, component string) error {
	switch component {
	case "etcd":
		return httpOK("http://127.0.0.1:2379/health", `"health":"true"`)
	case "kubelet":
		return httpOK("http://127.0.0.1:10248/healthz", "ok")
	case "containerd":
		return runOK("ctr", "--address", strings.TrimPrefix(env.RuntimeEndpoint, "unix://"), "version")
	}
	return nil // kube-apiserver and the rest: clusterHealthy
}

func clusterHealthy(env *harness.Env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.KubectlPath(), "--kubeconfig", env.Kubeconfig, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		return fmt.Errorf("API server /readyz: %v %s", err, out)
	}
	if err := runOK("ctr", "--address", strings.TrimPrefix(env.RuntimeEndpoint, "unix://"), "version"); err != nil {
		return fmt.Errorf("containerd: %v", err)
	}
	out, err = exec.CommandContext(ctx, env.KubectlPath(), "--kubeconfig", env.Kubeconfig, "get", "node", env.NodeName,
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "True" {
		return fmt.Errorf("node %s Ready: %v %s", env.NodeName, err, out)
	}
	return nil
}

func httpOK(url, want string) error {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b[:n]), want) {
		return fmt.Errorf("%s: %s %s", url, resp.Status, b[:n])
	}
	return nil
}

func runOK(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v %s", name, err, out)
	}
	return nil
}
