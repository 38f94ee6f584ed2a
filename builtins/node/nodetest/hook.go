//go:build linux

package nodetest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// hookEnv names the environment variable that turns a re-executed test
// binary into a target's init step.
const hookEnv = "KDIAG_NODETEST_INIT"

// initSpec is what the parent passes to the init step.
type initSpec struct {
	App      string   `json:"app"`
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Hostname string   `json:"hostname"`
}

// configFiles are the files of the incident's configuration.
var configFiles = map[string]string{
	"config.toml":     "[default]\n",
	"additional_file": "",
}

func init() {
	v, ok := os.LookupEnv(hookEnv)
	if !ok {
		return
	}
	var s initSpec
	err := json.Unmarshal([]byte(v), &s)
	if err == nil {
		err = s.setup()
	}
	if err == nil {
		err = syscall.Exec(s.App, s.Args, s.Env)
	}
	fmt.Fprintf(os.Stderr, "nodetest init: %v\n", err)
	os.Exit(111)
}

// command returns the re-execution of this test binary that runs the init
// step in new namespaces.
func (s initSpec) command() (*exec.Cmd, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"nodetest-init"}
	cmd.Env = []string{hookEnv + "=" + string(b)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
			syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC,
		Pdeathsig: syscall.SIGKILL,
	}
	return cmd, nil
}

// setup runs inside the new namespaces, as PID 1: it keeps its mounts from
// propagating to the host, mounts the configuration tmpfs and a fresh
// procfs, sets the host name and brings the loopback interface up.
func (s initSpec) setup() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := os.MkdirAll("/opt", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/opt", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=4m"); err != nil {
		return fmt.Errorf("mounting tmpfs on /opt: %w", err)
	}
	if err := os.MkdirAll(ConfigDir, 0o755); err != nil {
		return err
	}
	for name, content := range configFiles {
		if err := os.WriteFile(filepath.Join(ConfigDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink(ConfigDir+"/config.toml", ConfigDir+"/current.toml"); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	return loopbackUp()
}

// loopbackUp sets IFF_UP on lo, like "ip link set lo up".
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS lo: %w", err)
	}
	return nil
}
