package trace

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// syscallFakeMemory is tracee memory for decoding tests: addresses map to
// byte strings.
type syscallFakeMemory map[uint64][]byte

func (m syscallFakeMemory) at(addr uint64) ([]byte, bool) {
	for base, b := range m {
		if addr >= base && addr < base+uint64(len(b)) {
			return b[addr-base:], true
		}
	}
	return nil, false
}

func (m syscallFakeMemory) read(addr uint64, n int) ([]byte, bool) {
	b, ok := m.at(addr)
	if !ok || len(b) < n {
		return nil, false
	}
	return b[:n], true
}

func (m syscallFakeMemory) readString(addr uint64, max int) (string, bool) {
	b, ok := m.at(addr)
	if !ok {
		return "", false
	}
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return string(b), true
}

func TestSyscallNames(t *testing.T) {
	for _, tc := range []struct {
		arch uint32
		nr   uint64
		want string
	}{
		{syscallArchX8664, 0, "read"},
		{syscallArchX8664, 257, "openat"},
		{syscallArchX8664, 262, "newfstatat"},
		{syscallArchX8664, 332, "statx"},
		{syscallArchX8664, 437, "openat2"},
		{syscallArchX8664, 439, "faccessat2"},
		{syscallArchAArch64, 56, "openat"},
		{syscallArchAArch64, 79, "newfstatat"},
		{syscallArchAArch64, 291, "statx"},
		{syscallArchX8664, 100000, "syscall_100000"},
		{0x40000003, 5, "syscall_5"}, // i386 compat: not decoded
	} {
		if got := syscallName(tc.arch, tc.nr); got != tc.want {
			t.Errorf("syscallName(%#x, %d) = %q, want %q", tc.arch, tc.nr, got, tc.want)
		}
	}
}

func TestSyscallDecodeArgs(t *testing.T) {
	inet := make([]byte, 16)
	binary.LittleEndian.PutUint16(inet, 2)
	binary.BigEndian.PutUint16(inet[2:], 8080)
	copy(inet[4:], []byte{10, 96, 0, 1})
	inet6 := make([]byte, 28)
	binary.LittleEndian.PutUint16(inet6, 10)
	binary.BigEndian.PutUint16(inet6[2:], 443)
	inet6[23] = 1
	unixAddr := append([]byte{1, 0}, "/run/app.sock\x00"...)
	abstract := append([]byte{1, 0, 0}, "bus"...)
	argv := make([]byte, 40)
	for i, p := range []uint64{0x5000, 0x5100, 0x5200, 0x5300} {
		binary.LittleEndian.PutUint64(argv[i*8:], p)
	}
	how := make([]byte, 24)
	binary.LittleEndian.PutUint64(how, 0x80000|0x200000)
	binary.LittleEndian.PutUint64(how[16:], 0x10)
	mem := syscallFakeMemory{
		0x1000: []byte("/opt/config/additional_file\x00"),
		0x2000: inet, 0x3000: inet6, 0x3100: unixAddr, 0x3200: abstract,
		0x4000: argv, 0x5000: []byte("/bin/app\x00"), 0x5100: []byte("--db-password=hunter2\x00"),
		0x5200: []byte("--token\x00"), 0x5300: []byte("s3cr3t\x00"),
		0x6000: how,
	}
	neg100 := uint64(0xffffffffffffff9c) // AT_FDCWD
	for _, tc := range []struct {
		arch      uint32
		name      string
		args      [6]uint64
		want      []string
		wantPaths []string
	}{
		{syscallArchX8664, "openat", [6]uint64{neg100, 0x1000, 0x80000, 0}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "O_RDONLY|O_CLOEXEC", "0"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "openat", [6]uint64{3, 0x1000, 0x241 | 0x10000, 0o644}, []string{"3", `"/opt/config/additional_file"`, "O_WRONLY|O_DIRECTORY|O_CREAT|O_TRUNC", "0644"}, []string{"/opt/config/additional_file"}},
		{syscallArchAArch64, "openat", [6]uint64{neg100, 0x1000, 0x4000 | 0x80000}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "O_RDONLY|O_DIRECTORY|O_CLOEXEC", "0"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "statx", [6]uint64{neg100, 0x1000, 0x100, 0xfff, 0x9000}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "AT_SYMLINK_NOFOLLOW", "0xfff", "0x9000"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "faccessat2", [6]uint64{neg100, 0x1000, 6, 0}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "R_OK|W_OK", "0"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "access", [6]uint64{0x1000, 0}, []string{`"/opt/config/additional_file"`, "F_OK"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "openat2", [6]uint64{neg100, 0x1000, 0x6000, 24}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "{flags=O_RDONLY|O_CLOEXEC|O_PATH, mode=0, resolve=0x10}", "24"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "stat", [6]uint64{0x7777, 0}, []string{"0x7777", "NULL"}, nil}, // unreadable path
		{syscallArchX8664, "connect", [6]uint64{5, 0x2000, 16}, []string{"5", "10.96.0.1:8080", "16"}, nil},
		{syscallArchX8664, "connect", [6]uint64{5, 0x3000, 28}, []string{"5", "[::1]:443", "28"}, nil},
		{syscallArchX8664, "bind", [6]uint64{5, 0x3100, uint64(len(unixAddr))}, []string{"5", "unix:/run/app.sock", "16"}, nil},
		{syscallArchX8664, "connect", [6]uint64{5, 0x3200, 6}, []string{"5", "unix:@bus", "6"}, nil},
		{syscallArchX8664, "socket", [6]uint64{10, 1 | 0x80000, 0}, []string{"AF_INET6", "SOCK_STREAM|SOCK_CLOEXEC", "0"}, nil},
		{syscallArchX8664, "execve", [6]uint64{0x5000, 0x4000, 0x8000}, []string{`"/bin/app"`, `["/bin/app", "--db-password=<redacted>", "--token", "<redacted>"]`, "0x8000"}, []string{"/bin/app"}},
		{syscallArchX8664, "futex", [6]uint64{0xc000, 128, 0, 0, 0, 0}, []string{"0xc000", "FUTEX_WAIT_PRIVATE", "0", "NULL", "NULL", "0"}, nil},
		{syscallArchX8664, "kill", [6]uint64{42, 15}, []string{"42", "SIGTERM"}, nil},
		{syscallArchX8664, "unlinkat", [6]uint64{neg100, 0x1000, 0x200}, []string{"AT_FDCWD", `"/opt/config/additional_file"`, "AT_REMOVEDIR"}, []string{"/opt/config/additional_file"}},
		{syscallArchX8664, "getppid", [6]uint64{}, []string{}, nil},
	} {
		got, paths := syscallDecodeArgs(tc.arch, tc.name, tc.args, mem)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s%v (-want +got):\n%s", tc.name, tc.args, diff)
		}
		if diff := cmp.Diff(tc.wantPaths, paths); diff != "" {
			t.Errorf("%s paths (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestSyscallErrnoAndSignalNames(t *testing.T) {
	for e, want := range map[int64]string{2: "ENOENT", 13: "EACCES", 111: "ECONNREFUSED", 512: "ERESTARTSYS", 4000: "E4000"} {
		if got := syscallErrnoName(e); got != want {
			t.Errorf("syscallErrnoName(%d) = %q, want %q", e, got, want)
		}
	}
	for s, want := range map[int]string{9: "SIGKILL", 17: "SIGCHLD", 34: "SIGRT_2", 0: "0"} {
		if got := syscallSignalName(s); got != want {
			t.Errorf("syscallSignalName(%d) = %q, want %q", s, got, want)
		}
	}
}
