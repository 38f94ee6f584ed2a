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
	Unix     bool     `json:"unix"`
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
	if s.Unix {
		if err := unixSockets(); err != nil {
			return fmt.Errorf("unix sockets: %w", err)
		}
	}
	return loopbackUp()
}

// unixSockets makes the sockets of Options.UnixSockets at their fixed
// descriptors, without close-on-exec, so that the app inherits them.
func unixSockets() error {
	listen := func(addr unix.Sockaddr, fd int) error {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		if err := unix.Bind(s, addr); err != nil {
			return err
		}
		if err := unix.Listen(s, 16); err != nil {
			return err
		}
		return unix.Dup3(s, fd, 0)
	}
	if err := listen(&unix.SockaddrUnix{Name: UnixPath}, UnixPathFD); err != nil {
		return err
	}
	if err := listen(&unix.SockaddrUnix{Name: UnixAbstract}, UnixAbstractFD); err != nil {
		return err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for i, fd := range UnixPairFDs {
		if err := unix.Dup3(pair[i], fd, 0); err != nil {
			return err
		}
		unix.Close(pair[i])
	}
	return nil
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
