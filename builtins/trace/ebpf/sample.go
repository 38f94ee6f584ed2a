package ebpf

import (
	"errors"
	"time"
)

// ErrUnsupported is wrapped by the errors of Check and Sample when eBPF
// cannot run on this platform, kernel or with these privileges.
var ErrUnsupported = errors.New("ebpf tracing unsupported")

// Options select what Sample traces.
type Options struct {
	// TGIDs are host process ids whose threads are traced.
	TGIDs []int
	// FollowForks also traces the processes the targets create during
	// the sample (the kernel adds them as they are created).
	FollowForks bool
	// CgroupID, if not 0, also traces every process in this cgroup v2
	// (the inode number of its directory under /sys/fs/cgroup).
	CgroupID uint64
	// Syscalls, if not nil, are the only syscall numbers traced (an
	// empty set traces none).
	Syscalls map[uint32]bool
	// Duration is how long to trace.
	Duration time.Duration
	// MaxEvents caps the calls kept; the counts cover all. 0 keeps none.
	MaxEvents int
	// RingBytes is the size of the ring buffer, a power of two multiple
	// of the page size; 0 means 4 MiB.
	RingBytes int
	// ReadDelay holds back reading the ring buffer this long after
	// attaching (tests use it to fill the ring buffer).
	ReadDelay time.Duration

	// Started, if set, is called once the programs are attached.
	Started func()
	// Stop, if set, ends the sample when it is closed.
	Stop <-chan struct{}
	// Rescan, if set, is called every RescanEvery (default 100ms) for the
	// TGIDs that belong to the targets now: those not traced yet are
	// added (processes that joined a container without being a child of
	// a target, on hosts where no cgroup v2 id can select it). While it
	// is set, the sample does not end when the targets have exited.
	Rescan      func() []int
	RescanEvery time.Duration
	// OnCall, if set, sees each kept finished call as it is read (to end
	// a sample early on what a call did).
	OnCall func(*Call)
}

// Result is what Sample saw.
type Result struct {
	// StartNS and EndNS are CLOCK_MONOTONIC times of the attach and the
	// detach, the clock of the records' timestamps.
	StartNS, EndNS uint64
	// Calls are the calls kept, in order of exit; calls that had not
	// returned at the end come last, with Finished false.
	Calls []Call
	// Truncated is true when more calls happened than MaxEvents.
	Truncated bool
	// Counts are per syscall number, exact even when records were
	// dropped; calls unfinished at the end are not counted.
	Counts map[uint32]Count
	// Dropped counts records the ring buffer had no room for.
	Dropped uint64
	// Forks are the threads and processes the targets created.
	Forks []Fork
	// Execs are the execve's of the targets.
	Execs []Exec
	// Exits are the threads of the targets that exited.
	Exits []Exit
	// ProcTruncated is true when more than 65536 forks, execs or exits
	// came (only that many of each are kept).
	ProcTruncated bool
}

// Call is one syscall.
type Call struct {
	TGID, TID int
	// Comm is the thread's name at the exit of the call.
	Comm string
	// Nr is the syscall number of this architecture.
	Nr uint32
	// Args are the six raw argument registers.
	Args [6]uint64
	// Ret is the return value (-errno on error); 0 when not Finished.
	Ret int64
	// Finished is false for a call still in progress at the end.
	Finished bool
	// EntryNS is the CLOCK_MONOTONIC time of entry; DurNS the time spent.
	EntryNS, DurNS uint64
	// Captured are the strings and bytes the call's arguments pointed
	// to, read at its entry.
	Captured []Captured
}

// Captured is memory an argument pointed to at the entry of a call.
type Captured struct {
	// Arg is the argument's index (0-5).
	Arg int
	// Kind says what Value is.
	Kind CaptureKind
	// Word is the index of an argv word.
	Word int
	// Value is the string (without its NUL) or the bytes.
	Value string
}

// CaptureKind is the kind of a Captured.
type CaptureKind uint8

// The kinds of captured memory.
const (
	// CapturePath is a NUL-terminated string (up to 511 bytes kept).
	CapturePath CaptureKind = 1
	// CaptureArgv is a word of an argv array (up to 127 bytes kept, 16
	// words).
	CaptureArgv CaptureKind = 2
	// CaptureArgvEnd marks the end (NULL) of an argv array after Word
	// words; its absence means the array had more than 16.
	CaptureArgvEnd CaptureKind = 3
	// CaptureBytes are the bytes of a struct (sockaddr, open_how).
	CaptureBytes CaptureKind = 4
)

// Count is the per-syscall summary.
type Count struct {
	Calls, Errors uint64
	// TotalNS is the time spent in the calls.
	TotalNS uint64
}

// Fork is a thread or process a target created.
type Fork struct {
	ParentTGID, ParentTID int
	ChildTGID, ChildTID   int
	// Thread is true for a new thread of the parent's process.
	Thread bool
	TimeNS uint64
}

// Exec is a successful execve of a target.
type Exec struct {
	TGID, TID int
	// OldTID is the thread that called execve (differs from TID when a
	// non-leader thread exec'd).
	OldTID   int
	Comm     string
	Filename string
	TimeNS   uint64
}

// Exit is a thread of a target that exited.
type Exit struct {
	TGID, TID int
	// Code is the exit status (wait status encoding).
	Code   int
	TimeNS uint64
}
