package trace

//go:generate go run syscalls_gen.go

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The audit architectures of PTRACE_GET_SYSCALL_INFO that strace_sample
// can name syscalls for.
const (
	syscallArchX8664   = 0xc000003e
	syscallArchAArch64 = 0xc00000b7
)

// syscallName returns the name of syscall nr on the tracee's audit
// architecture, or "syscall_N" when it has none.
func syscallName(arch uint32, nr uint64) string {
	var table []string
	switch arch {
	case syscallArchX8664:
		table = syscallNamesX8664[:]
	case syscallArchAArch64:
		table = syscallNamesAArch64[:]
	}
	if nr < uint64(len(table)) && table[nr] != "" {
		return table[nr]
	}
	return "syscall_" + strconv.FormatUint(nr, 10)
}

// syscallKnownNames returns the set of names of every syscall of every
// architecture strace_sample knows, to validate a syscalls= filter.
func syscallKnownNames() map[string]bool {
	names := map[string]bool{}
	for _, n := range syscallNamesX8664 {
		if n != "" {
			names[n] = true
		}
	}
	for _, n := range syscallNamesAArch64 {
		if n != "" {
			names[n] = true
		}
	}
	return names
}

// syscallErrnoName names an errno value returned by a syscall, including
// the kernel-internal restart codes strace shows.
func syscallErrnoName(e int64) string {
	switch e {
	case 512:
		return "ERESTARTSYS"
	case 513:
		return "ERESTARTNOINTR"
	case 514:
		return "ERESTARTNOHAND"
	case 515:
		return "ENOIOCTLCMD"
	case 516:
		return "ERESTART_RESTARTBLOCK"
	}
	if e > 0 && e < int64(len(syscallErrnoNames)) && syscallErrnoNames[e] != "" {
		return syscallErrnoNames[e]
	}
	return "E" + strconv.FormatInt(e, 10)
}

// syscallErrnoNames are the Linux errno names (identical on x86_64 and
// aarch64), indexed by value.
var syscallErrnoNames = [...]string{
	1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
	8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
	14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
	20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
	26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
	32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG", 37: "ENOLCK",
	38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 61: "ENODATA",
	62: "ETIME", 71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 84: "EILSEQ", 88: "ENOTSOCK",
	89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT",
	93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP", 96: "EPFNOSUPPORT",
	97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN",
	101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET",
	105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 109: "ETOOMANYREFS",
	110: "ETIMEDOUT", 111: "ECONNREFUSED", 112: "EHOSTDOWN", 113: "EHOSTUNREACH",
	114: "EALREADY", 115: "EINPROGRESS", 116: "ESTALE", 122: "EDQUOT", 125: "ECANCELED",
	130: "EOWNERDEAD", 131: "ENOTRECOVERABLE",
}

// syscallSignalName names a signal number (the numbering is the same on
// x86_64 and aarch64).
func syscallSignalName(sig int) string {
	names := [...]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP",
		6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
		12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT",
		17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN",
		22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM",
		27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}
	switch {
	case sig == 0:
		return "0"
	case sig > 0 && sig < len(names):
		return names[sig]
	case sig >= 32 && sig <= 64:
		return "SIGRT_" + strconv.Itoa(sig-32)
	}
	return strconv.Itoa(sig)
}

// syscallFlags renders v as NAME|NAME|0x.. from an ordered flag table.
func syscallFlags(v uint64, table []syscallFlag) string {
	var parts []string
	for _, f := range table {
		if f.bits != 0 && v&f.bits == f.bits {
			parts = append(parts, f.name)
			v &^= f.bits
		}
	}
	if v != 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	return strings.Join(parts, "|")
}

// syscallFlag is one named bit (or group of bits) of a flags argument.
type syscallFlag struct {
	bits uint64
	name string
}

// syscallOpenFlags renders open(2) flags for the tracee's architecture
// (O_DIRECTORY and friends differ between x86_64 and aarch64).
func syscallOpenFlags(arch uint32, v uint64) string {
	acc := [...]string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[v&3]
	rest := v &^ 3
	if rest == 0 {
		return acc
	}
	table := syscallOpenFlagsX8664
	if arch == syscallArchAArch64 {
		table = syscallOpenFlagsAArch64
	}
	return acc + "|" + syscallFlags(rest, table)
}

var syscallOpenFlagsCommon = []syscallFlag{
	{0x40, "O_CREAT"}, {0x80, "O_EXCL"}, {0x100, "O_NOCTTY"}, {0x200, "O_TRUNC"},
	{0x400, "O_APPEND"}, {0x800, "O_NONBLOCK"}, {0x101000, "O_SYNC"}, {0x1000, "O_DSYNC"},
	{0x2000, "O_ASYNC"}, {0x40000, "O_NOATIME"}, {0x80000, "O_CLOEXEC"}, {0x200000, "O_PATH"},
}

var syscallOpenFlagsX8664 = append([]syscallFlag{{0x410000, "O_TMPFILE"}, {0x4000, "O_DIRECT"},
	{0x8000, "O_LARGEFILE"}, {0x10000, "O_DIRECTORY"}, {0x20000, "O_NOFOLLOW"}}, syscallOpenFlagsCommon...)

var syscallOpenFlagsAArch64 = append([]syscallFlag{{0x404000, "O_TMPFILE"}, {0x4000, "O_DIRECTORY"},
	{0x8000, "O_NOFOLLOW"}, {0x10000, "O_DIRECT"}, {0x20000, "O_LARGEFILE"}}, syscallOpenFlagsCommon...)

var syscallAtFlags = []syscallFlag{
	{0x100, "AT_SYMLINK_NOFOLLOW"}, {0x200, "AT_REMOVEDIR"}, {0x400, "AT_SYMLINK_FOLLOW"},
	{0x800, "AT_NO_AUTOMOUNT"}, {0x1000, "AT_EMPTY_PATH"}, {0x2000, "AT_STATX_FORCE_SYNC"},
	{0x4000, "AT_STATX_DONT_SYNC"},
}

var syscallAccessModes = []syscallFlag{{4, "R_OK"}, {2, "W_OK"}, {1, "X_OK"}}

var syscallSockTypeFlags = []syscallFlag{{0x80000, "SOCK_CLOEXEC"}, {0x800, "SOCK_NONBLOCK"}}

var syscallFutexOps = map[uint64]string{0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD",
	3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI",
	7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET"}

var syscallFcntlCmds = map[uint64]string{0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL",
	4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 1030: "F_DUPFD_CLOEXEC"}

var syscallFamilies = map[uint64]string{0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6",
	16: "AF_NETLINK", 17: "AF_PACKET"}

var syscallSockTypes = map[uint64]string{1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW",
	5: "SOCK_SEQPACKET"}

// syscallEnum renders v by name from table, or as a number.
func syscallEnum(v uint64, table map[uint64]string) string {
	if n, ok := table[v]; ok {
		return n
	}
	return strconv.FormatUint(v, 10)
}

// syscallSortedKeys returns the keys of m sorted.
func syscallSortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}
