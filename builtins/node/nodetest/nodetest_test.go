//go:build linux

package nodetest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStartIsolatedTarget(t *testing.T) {
	tg := Start(t, Options{Env: []string{"SECRET_TOKEN=hunter2"}})
	if err := tg.WaitOutput("app_state bad - configuration at /opt/config is not valid", 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for ns, differ := range map[string]bool{"net": true, "pid": true, "uts": true, "mnt": true, "ipc": true} {
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", tg.PID, ns))
		if err != nil {
			t.Fatal(err)
		}
		if (self != its) != differ {
			t.Errorf("%s namespace: self %s, target %s", ns, self, its)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.PID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), fmt.Sprintf("NSpid:\t%d\t1\n", tg.PID)) {
		t.Errorf("target is not PID 1 of its namespace:\n%s", status)
	}
	if _, err := os.Stat("/opt/config/config.toml"); err == nil {
		t.Errorf("the target's tmpfs leaked to the host: /opt/config/config.toml exists")
	}
	b, err := os.ReadFile(tg.Path("/opt/config/config.toml"))
	if err != nil || string(b) != "[default]\n" {
		t.Errorf("config.toml through /proc/PID/root = %q, %v", b, err)
	}
	mark := len(tg.Output())
	if err := tg.RemoveFile(); err != nil {
		t.Fatal(err)
	}
	if err := tg.WaitOutput("app_state ok", mark, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	tg.Stop()
	if !tg.Exited() {
		t.Error("target still running after Stop")
	}
}
