package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// syscallMemory reads the memory of a stopped tracee.
type syscallMemory interface {
	// readString reads a NUL-terminated string of at most max bytes at addr.
	readString(addr uint64, max int) (string, bool)
	// read reads n bytes at addr.
	read(addr uint64, n int) ([]byte, bool)
}

// syscallSignatures gives, for the syscalls strace_sample decodes, the
// kind of each argument:
//
//	fd dirfd path str oflags mode access atflags int uint long hex ptr
//	sockaddr (its length is the next argument) family socktype sig argv
//	futexop fcntlcmd how (struct open_how)
//
// Syscalls not listed are reported with no arguments.
var syscallSignatures = map[string]string{
	"read": "fd ptr uint", "write": "fd ptr uint", "pread64": "fd ptr uint long",
	"pwrite64": "fd ptr uint long", "readv": "fd ptr int", "writev": "fd ptr int",
	"open": "path oflags mode", "openat": "dirfd path oflags mode", "openat2": "dirfd path how uint",
	"creat": "path mode", "close": "fd", "close_range": "fd fd hex",
	"stat": "path ptr", "lstat": "path ptr", "fstat": "fd ptr",
	"newfstatat": "dirfd path ptr atflags", "statx": "dirfd path atflags hex ptr",
	"statfs": "path ptr", "fstatfs": "fd ptr",
	"access": "path access", "faccessat": "dirfd path access", "faccessat2": "dirfd path access atflags",
	"readlink": "path ptr uint", "readlinkat": "dirfd path ptr uint",
	"execve": "path argv ptr", "execveat": "dirfd path argv ptr atflags",
	"unlink": "path", "unlinkat": "dirfd path atflags", "rmdir": "path",
	"chdir": "path", "fchdir": "fd", "chroot": "path", "getcwd": "ptr uint",
	"mkdir": "path mode", "mkdirat": "dirfd path mode",
	"rename": "path path", "renameat": "dirfd path dirfd path", "renameat2": "dirfd path dirfd path hex",
	"link": "path path", "linkat": "dirfd path dirfd path atflags",
	"symlink": "str path", "symlinkat": "str dirfd path",
	"chmod": "path mode", "fchmod": "fd mode", "fchmodat": "dirfd path mode",
	"chown": "path int int", "lchown": "path int int", "fchown": "fd int int",
	"fchownat": "dirfd path int int atflags", "utimensat": "dirfd path ptr atflags",
	"truncate": "path long", "ftruncate": "fd long", "getdents64": "fd ptr uint",
	"lseek": "fd long int", "fsync": "fd", "fdatasync": "fd", "flock": "fd int",
	"dup": "fd", "dup2": "fd fd", "dup3": "fd fd oflags", "pipe": "ptr", "pipe2": "ptr oflags",
	"fcntl": "fd fcntlcmd hex", "ioctl": "fd hex hex",
	"inotify_add_watch": "fd path hex", "inotify_rm_watch": "fd int",
	"getxattr": "path str ptr uint", "lgetxattr": "path str ptr uint", "fgetxattr": "fd str ptr uint",
	"socket": "family socktype int", "socketpair": "family socktype int ptr",
	"connect": "fd sockaddr uint", "bind": "fd sockaddr uint", "listen": "fd int",
	"accept": "fd ptr ptr", "accept4": "fd ptr ptr hex", "shutdown": "fd int",
	"sendto": "fd ptr uint hex sockaddr uint", "recvfrom": "fd ptr uint hex ptr ptr",
	"sendmsg": "fd ptr hex", "recvmsg": "fd ptr hex", "sendmmsg": "fd ptr uint hex",
	"recvmmsg": "fd ptr uint hex ptr", "getsockname": "fd ptr ptr", "getpeername": "fd ptr ptr",
	"getsockopt": "fd int int ptr ptr", "setsockopt": "fd int int ptr uint",
	"poll": "ptr uint int", "ppoll": "ptr uint ptr ptr uint",
	"select": "int ptr ptr ptr ptr", "pselect6": "int ptr ptr ptr ptr ptr",
	"epoll_create": "int", "epoll_create1": "hex", "epoll_ctl": "fd int fd ptr",
	"epoll_wait": "fd ptr int int", "epoll_pwait": "fd ptr int int ptr uint",
	"epoll_pwait2": "fd ptr int ptr ptr uint", "eventfd2": "uint hex",
	"timerfd_create": "int hex", "timerfd_settime": "fd hex ptr ptr",
	"nanosleep": "ptr ptr", "clock_nanosleep": "int hex ptr ptr", "clock_gettime": "int ptr",
	"futex": "ptr futexop int ptr ptr int",
	"mmap":  "ptr uint hex hex fd long", "munmap": "ptr uint", "mprotect": "ptr uint hex",
	"madvise": "ptr uint int", "brk": "ptr", "mremap": "ptr uint uint hex ptr",
	"kill": "int sig", "tkill": "int sig", "tgkill": "int int sig",
	"rt_sigaction": "sig ptr ptr uint", "rt_sigprocmask": "int ptr ptr uint", "sigaltstack": "ptr ptr",
	"exit": "int", "exit_group": "int", "wait4": "int ptr hex ptr", "waitid": "int int ptr hex ptr",
	"clone": "hex ptr ptr ptr ptr", "clone3": "ptr uint",
	"uname": "ptr", "getrandom": "ptr uint hex", "prctl": "int hex hex hex hex",
	"arch_prctl": "hex ptr", "setns": "fd hex", "unshare": "hex",
	"mount": "path path str hex ptr", "umount2": "path hex", "memfd_create": "str hex",
	"sendfile": "fd fd ptr uint", "splice": "fd ptr fd ptr uint hex",
	"sched_getaffinity": "int uint ptr", "getrlimit": "int ptr", "prlimit64": "int int ptr ptr",
}

// syscallParsedSignatures are syscallSignatures split into kinds.
var syscallParsedSignatures = func() map[string][]string {
	m := make(map[string][]string, len(syscallSignatures))
	for name, sig := range syscallSignatures {
		m[name] = strings.Fields(sig)
	}
	return m
}()

// syscallDecodeArgs renders the arguments of a syscall at its entry, and
// returns the file paths among them.
func syscallDecodeArgs(arch uint32, name string, args [6]uint64, mem syscallMemory) (out, paths []string) {
	kinds := syscallParsedSignatures[name]
	out = make([]string, 0, len(kinds))
	for i, kind := range kinds {
		v := args[i]
		var s string
		switch kind {
		case "fd":
			s = strconv.Itoa(int(int32(v)))
		case "dirfd":
			if int32(v) == -100 {
				s = "AT_FDCWD"
			} else {
				s = strconv.Itoa(int(int32(v)))
			}
		case "path", "str":
			str, ok := mem.readString(v, 4096)
			if !ok {
				s = syscallPointer(v)
				break
			}
			s = strconv.Quote(str)
			if kind == "path" {
				paths = append(paths, str)
			}
		case "oflags":
			s = syscallOpenFlags(arch, v)
		case "mode":
			s = fmt.Sprintf("%#o", uint32(v))
		case "access":
			if v == 0 {
				s = "F_OK"
			} else {
				s = syscallFlags(v, syscallAccessModes)
			}
		case "atflags":
			if v == 0 {
				s = "0"
			} else {
				s = syscallFlags(v, syscallAtFlags)
			}
		case "int":
			s = strconv.Itoa(int(int32(v)))
		case "uint":
			s = strconv.FormatUint(v, 10)
		case "long":
			s = strconv.FormatInt(int64(v), 10)
		case "hex":
			s = fmt.Sprintf("%#x", v)
		case "ptr":
			s = syscallPointer(v)
		case "sockaddr":
			s = syscallSockaddr(mem, v, args[i+1])
		case "family":
			s = syscallEnum(v, syscallFamilies)
		case "socktype":
			s = syscallEnum(v&0xf, syscallSockTypes)
			if v&^0xf != 0 {
				s += "|" + syscallFlags(v&^0xf, syscallSockTypeFlags)
			}
		case "sig":
			s = syscallSignalName(int(v))
		case "argv":
			s = syscallArgv(mem, v)
		case "futexop":
			s = syscallEnum(v&0x7f, syscallFutexOps)
			if v&0x80 != 0 {
				s += "_PRIVATE"
			}
		case "fcntlcmd":
			s = syscallEnum(v, syscallFcntlCmds)
		case "how":
			s = syscallOpenHow(arch, mem, v)
		}
		out = append(out, s)
	}
	return out, paths
}

// syscallPointer renders an address.
func syscallPointer(v uint64) string {
	if v == 0 {
		return "NULL"
	}
	return fmt.Sprintf("%#x", v)
}

// syscallOpenHow renders openat2's struct open_how {flags, mode, resolve}.
func syscallOpenHow(arch uint32, mem syscallMemory, addr uint64) string {
	b, ok := mem.read(addr, 24)
	if !ok {
		return syscallPointer(addr)
	}
	le := binary.LittleEndian
	return fmt.Sprintf("{flags=%s, mode=%#o, resolve=%#x}",
		syscallOpenFlags(arch, le.Uint64(b)), le.Uint64(b[8:]), le.Uint64(b[16:]))
}

// syscallSockaddr renders a struct sockaddr of length n at addr: an
// AF_INET or AF_INET6 address with port, or an AF_UNIX path ("@name"
// for the abstract namespace).
func syscallSockaddr(mem syscallMemory, addr, n uint64) string {
	if addr == 0 {
		return "NULL"
	}
	if n < 2 || n > 128 {
		return syscallPointer(addr)
	}
	b, ok := mem.read(addr, int(n))
	if !ok {
		return syscallPointer(addr)
	}
	family := uint64(binary.LittleEndian.Uint16(b))
	switch {
	case family == 2 && len(b) >= 8:
		ip := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:])).String()
	case family == 10 && len(b) >= 24:
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:])).String()
	case family == 1:
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			return "unix:@" + string(p[1:])
		}
		if i := strings.IndexByte(string(p), 0); i >= 0 {
			p = p[:i]
		}
		return "unix:" + string(p)
	}
	return "{family=" + syscallEnum(family, syscallFamilies) + "}"
}

// syscallSecretArg matches argv words that name a secret.
var syscallSecretArg = regexp.MustCompile(`(?i)(pass|secret|token|key|auth|cred)`)

// syscallArgv renders an execve argv array (at most 16 words), replacing
// secret-looking values with "<redacted>": the value of NAME=VALUE and
// --flag=VALUE words whose name looks secret, and the word following such
// a flag.
func syscallArgv(mem syscallMemory, addr uint64) string {
	if addr == 0 {
		return "NULL"
	}
	var words []string
	redactNext := false
	for i := 0; i < 17; i++ {
		b, ok := mem.read(addr+uint64(i)*8, 8)
		if !ok {
			break
		}
		p := binary.LittleEndian.Uint64(b)
		if p == 0 {
			break
		}
		if i == 16 {
			words = append(words, "...")
			break
		}
		w, ok := mem.readString(p, 256)
		if !ok {
			w = syscallPointer(p)
		}
		switch {
		case redactNext:
			w = "<redacted>"
			redactNext = false
		case strings.Contains(w, "=") && syscallSecretArg.MatchString(w[:strings.Index(w, "=")]):
			w = w[:strings.Index(w, "=")+1] + "<redacted>"
		case strings.HasPrefix(w, "-") && syscallSecretArg.MatchString(w):
			redactNext = true
		}
		words = append(words, strconv.Quote(w))
	}
	return "[" + strings.Join(words, ", ") + "]"
}

// syscallDecodeExit fills in, after a call returned ret, the arguments it
// wrote: the peer address accept wrote, and the pending error a getsockopt
// of SO_ERROR read (the outcome of a non-blocking connect: EINPROGRESS at
// the connect, ECONNREFUSED or ETIMEDOUT here).
func syscallDecodeExit(mem syscallMemory, name string, raw [6]uint64, ret int64, args []string) {
	if ret < 0 {
		return
	}
	switch name {
	case "accept", "accept4":
		if len(args) > 1 {
			args[1] = syscallAcceptedPeer(mem, raw[1], raw[2])
		}
	case "getsockopt":
		if raw[1] != 1 || raw[2] != 4 || len(args) < 4 { // SOL_SOCKET, SO_ERROR
			return
		}
		args[1], args[2] = "SOL_SOCKET", "SO_ERROR"
		if b, ok := mem.read(raw[3], 4); ok {
			v := int64(int32(binary.LittleEndian.Uint32(b)))
			args[3] = "[0]"
			if v != 0 {
				args[3] = "[" + syscallErrnoName(v) + "]"
			}
		}
	}
}

// syscallAcceptedPeer renders the peer address accept(2) wrote at addr,
// whose length it wrote at lenAddr (a socklen_t), after the call returned.
func syscallAcceptedPeer(mem syscallMemory, addr, lenAddr uint64) string {
	if addr == 0 || lenAddr == 0 {
		return "NULL"
	}
	b, ok := mem.read(lenAddr, 4)
	if !ok {
		return syscallPointer(addr)
	}
	return syscallSockaddr(mem, addr, uint64(binary.LittleEndian.Uint32(b)))
}
