//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "while :; do cat /etc/hostname >/dev/null; ls /nonexistent-x 2>/dev/null; sleep 0.05; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	res, err := Sample(context.Background(), Options{TGIDs: []int{cmd.Process.Pid}, FollowForks: true, Duration: 500 * time.Millisecond, MaxEvents: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("calls %d dropped %d forks %d execs %d exits %d counts %d", len(res.Calls), res.Dropped, len(res.Forks), len(res.Execs), len(res.Exits), len(res.Counts))
	for i, c := range res.Calls {
		if len(c.Captured) > 0 && i < 400 {
			t.Logf("%d/%d %s nr=%d ret=%d %+v", c.TGID, c.TID, c.Comm, c.Nr, c.Ret, c.Captured)
		}
	}
	t.Logf("execs %+v", res.Execs[:2])
	t.Logf("forks %+v", res.Forks[:2])
}
