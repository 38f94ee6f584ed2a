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
	"syscall"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// testCgroup creates a real cgroup (v2, or the unified hierarchy of a
// hybrid host) named like containerd's systemd cgroups, for a random
// container ID.
func testCgroup(t *testing.T) (id, dir string) {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	id = hex.EncodeToString(b)
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			continue
		}
		dir = filepath.Join(root, "cri-containerd-"+id+".scope")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("creating a cgroup (tests run as root): %v", err)
		}
		t.Cleanup(func() {
			for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		})
		return id, dir
	}
	t.Fatal("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return "", ""
}

func TestFindPIDByCgroupScan(t *testing.T) {
	isolateEndpoints(t)
	id, dir := testCgroup(t)
	// An init (sh) with a child (sleep), both in the container's cgroup.
	cmd := exec.Command("sh", "-c", "read x; sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	for i := 0; i < 200 && len(criCgroupMembers(id)) < 2; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := criCgroupMembers(id); len(got) != 2 {
		t.Fatalf("cgroup members %v, want sh and sleep", got)
	}

	s := Specs(nil)[0]
	v, err := s.Run(context.Background(), &engine.Call{Spec: s, Args: engine.Args{"container_id": id, "namespace": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	res := v.(*FindPIDResult)
	if res.PID != cmd.Process.Pid || res.Source != "cgroup" || res.ContainerID != id || res.Namespaces["net"] != "/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/net" {
		t.Errorf("got %+v, want pid %d (the sh, not its sleep) from the cgroup scan", res, cmd.Process.Pid)
	}

	_, err = findPID(context.Background(), findPIDQuery{ContainerID: id[:8]}, "", "")
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short ID: err = %v", err)
	}
	_, err = findPID(context.Background(), findPIDQuery{ContainerID: strings.Repeat("0", 64)}, "", "")
	if engine.KindOf(err) != engine.KindNotFound || !strings.HasPrefix(err.Error(), `find_pid: no process is in a cgroup of container "0000`) {
		t.Errorf("unknown ID: err = %v", err)
	}
	_, err = findPID(context.Background(), findPIDQuery{Pod: "web", Namespace: "default"}, "", "")
	if engine.KindOf(err) != engine.KindNotFound || !strings.HasPrefix(err.Error(), "find_pid: no CRI runtime socket found (tried ") {
		t.Errorf("pod without a runtime: err = %v", err)
	}
}
