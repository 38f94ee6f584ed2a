// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

// The kernel side of kdiag's eBPF syscall tracer. BTF-enabled raw
// tracepoints (tp_btf) on sys_enter and sys_exit keep the calls of the target processes (a set of
// TGIDs, followed into children through sched_process_fork, and/or a
// cgroup v2 id): per-CPU counters for every call, and records in a ring
// buffer for each call (at exit) and for the strings a file syscall passes
// (at entry, while the caller's memory still holds them). Each thread's
// call in progress is in task-local storage (no hash update and delete per
// call).

#include "common.h"
#include "bpf_helpers.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define MAX_NR 512          /* syscall numbers counted (x86_64, arm64 < 512) */
#define PATH_CAP 512        /* bytes kept of a path, NUL included */
#define ARGV_WORDS 16       /* execve argv words kept */
#define WORD_CAP 128        /* bytes kept of an argv word, NUL included */
#define MEM_CAP 128         /* bytes kept of a struct argument (sockaddr, open_how) */
#define SCRATCH 4096        /* bytes of captured data per call */

/* Record kinds, the first u32 of every ring buffer record. */
#define REC_CALL 1
#define REC_STRINGS 2
#define REC_FORK 3
#define REC_EXEC 4
#define REC_EXIT 5
#define REC_NORETURN 6 /* a call_rec of exit or exit_group, sent at entry */

/* Item kinds inside a REC_STRINGS record. */
#define ITEM_PATH 1         /* NUL-terminated string at an argument */
#define ITEM_ARGV 2         /* next argv word of the argument */
#define ITEM_ARGV_END 3     /* the argv array ended (NULL) here */
#define ITEM_MEM 4          /* bytes at an argument */

struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* The syscall arguments are read from the registers saved at entry:
 * x86_64 di, si, dx, r10, r8, r9; arm64 regs[0..5]. sys_enter and sys_exit
 * are tp_btf programs, so the verifier knows their pt_regs argument's type
 * and the reads are direct loads (CO-RE relocated against the kernel's
 * BTF), cheaper than bpf_probe_read_kernel. */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r10, r9, r8, dx, si, di, orig_ax;
} __attribute__((preserve_access_index));
/* syscall_nr is the number of the call a task is in, at its exit. */
static __always_inline long syscall_nr(struct pt_regs *r)
{
	return r->orig_ax;
}
static __always_inline void read_args(struct pt_regs *r, __u64 *args)
{
	args[0] = r->di;
	args[1] = r->si;
	args[2] = r->dx;
	args[3] = r->r10;
	args[4] = r->r8;
	args[5] = r->r9;
}
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	unsigned long regs[31];
	int syscallno;
} __attribute__((preserve_access_index));
static __always_inline long syscall_nr(struct pt_regs *r)
{
	return r->syscallno;
}
static __always_inline void read_args(struct pt_regs *r, __u64 *args)
{
	args[0] = r->regs[0];
	args[1] = r->regs[1];
	args[2] = r->regs[2];
	args[3] = r->regs[3];
	args[4] = r->regs[4];
	args[5] = r->regs[5];
}
#else
#error "unsupported architecture"
#endif

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
} __attribute__((preserve_access_index));

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

/* Configuration, set by the loader before loading. */
volatile const __u64 target_cgroup = 0; /* cgroup v2 id, 0: none */
volatile const __u8 use_targets = 0;     /* the targets map selects TGIDs */
volatile const __u8 follow = 0;          /* add children to targets */
volatile const __u8 use_filter = 0;      /* the sysfilter map selects syscalls */
volatile const __u32 nr_exit = 0;        /* exit and exit_group: they never return */
volatile const __u32 nr_exit_group = 0;

#ifndef BPF_MAP_TYPE_TASK_STORAGE
#define BPF_MAP_TYPE_TASK_STORAGE 29
#endif
#define NO_PREALLOC 1               /* BPF_F_NO_PREALLOC */
#define STORAGE_GET_F_CREATE 1      /* BPF_LOCAL_STORAGE_GET_F_CREATE */

struct inflight {
	__u64 ts;
	__u64 args[6];
	__u32 nr;
	__u32 tgid;
	__u32 missed; /* reads of the capture that failed at entry */
	__u32 live;   /* 1 between the entry and the exit of a call */
};

struct count {
	__u64 calls;
	__u64 errors;
	__u64 ns;
};

/* capture says what to capture at the entry of a syscall. */
struct capture {
	__u8 path_mask;   /* bit i: argument i is a path */
	__u8 argv_arg;    /* 1 + argument holding an argv array, 0: none */
	__u8 mem_arg;     /* 1 + argument pointing to a struct, 0: none */
	__u8 mem_len_arg; /* 1 + argument giving its length, 0: mem_len */
	__u8 mem_len;
	__u8 out_arg;     /* 1 + argument pointing to a struct the call writes (accept's peer), 0: none */
	__u8 out_len_arg; /* 1 + argument pointing to its length (a socklen_t) */
	__u8 pad;
};

struct call_rec {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__u32 nr;
	__u64 args[6];
	__s64 ret;
	__u64 ts;
	__u64 dur;
	char comm[16];
};

struct strings_rec {
	__u32 kind;
	__u32 tid;
	__u64 ts;
	__u32 nr;
	__u32 size; /* bytes of buf used */
	__u8 buf[SCRATCH * 2];
};

struct fork_rec {
	__u32 kind;
	__u32 parent_tgid;
	__u32 parent_tid;
	__u32 child_tgid;
	__u32 child_tid;
	__u32 pad;
	__u64 ts;
};

struct exec_rec {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__u32 old_tid;
	__u64 ts;
	char comm[16];
	char filename[256];
};

struct exit_rec {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__s32 code;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, __u8);
} sysfilter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, struct capture);
} captures SEC(".maps");

/* control[0] bit 0: stop sending call records (enough were kept). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

/* The call each thread is in: task-local storage, which costs a fraction
 * of a hash map's update and delete per call (created at a thread's first
 * traced call, freed with the thread or the map). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, struct count);
} counts SEC(".maps");

/* dropped[0]: records the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct strings_rec);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

static __always_inline int wanted(__u32 tgid)
{
	if (target_cgroup && bpf_get_current_cgroup_id() == target_cgroup)
		return 1;
	if (use_targets && bpf_map_lookup_elem(&targets, &tgid))
		return 1;
	return 0;
}

static __always_inline void drop(void)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
	if (d)
		*d += 1;
}

static __always_inline int calls_off(void)
{
	__u32 zero = 0;
	__u32 *c = bpf_map_lookup_elem(&control, &zero);
	return c && (*c & 1);
}

/* bound masks an offset into the scratch buffer in a way clang cannot drop
 * (after a bounds check the mask is a no-op to clang, but the verifier
 * may have lost the bound on the register clang uses). */
static __always_inline __u32 bound(__u32 off)
{
	__u64 v = off;
	asm volatile("%0 &= 4095" : "+r"(v));
	return v;
}

/* item writes an item header at off and returns where its data goes. */
static __always_inline void item(struct strings_rec *s, __u32 off, __u8 kind, __u8 arg, __u16 len)
{
	off = bound(off);
	s->buf[off] = kind;
	s->buf[off + 1] = arg;
	s->buf[off + 2] = len & 0xff;
	s->buf[off + 3] = len >> 8;
}

/* capture_path and argv_word are global functions: the verifier checks
 * each once, with off unknown, instead of once per path through the
 * captures before their call (that took ~190k verified instructions and
 * ~0.4 s per load). They return the new offset. */
__attribute__((noinline)) int capture_path(struct strings_rec *s, __u32 off, __u32 arg, __u64 addr, __u32 *missed)
{
	if (!s || !missed || off > SCRATCH - 4 - PATH_CAP)
		return off;
	off = bound(off);
	long n = bpf_probe_read_user_str(&s->buf[off + 4], PATH_CAP, (const void *)addr);
	if (n < 0 && addr)
		*missed += 1;
	if (n <= 0)
		return off;
	__u32 len = (n - 1) & (PATH_CAP - 1);
	item(s, off, ITEM_PATH, arg, len);
	return off + 4 + len;
}

__attribute__((noinline)) int argv_word(struct strings_rec *s, __u32 off, __u32 arg, __u64 p)
{
	if (!s || off > SCRATCH - 4 - WORD_CAP)
		return off;
	off = bound(off);
	long n = bpf_probe_read_user_str(&s->buf[off + 4], WORD_CAP, (const void *)p);
	__u32 len = 0;
	if (n > 0)
		len = (n - 1) & (WORD_CAP - 1);
	item(s, off, ITEM_ARGV, arg, len);
	return off + 4 + len;
}

static __always_inline __u32 capture_argv(struct strings_rec *s, __u32 off, __u8 arg, __u64 addr)
{
#pragma unroll
	for (int i = 0; i <= ARGV_WORDS; i++) {
		__u64 p = 0;
		if (bpf_probe_read_user(&p, sizeof(p), (const void *)(addr + i * 8)) < 0)
			return off;
		if (off > SCRATCH - 4 - WORD_CAP)
			return off;
		off = bound(off);
		if (p == 0) {
			item(s, off, ITEM_ARGV_END, arg, 0);
			return off + 4;
		}
		if (i == ARGV_WORDS)
			return off;
		off = argv_word(s, off, arg, p);
	}
	return off;
}

static __always_inline __u32 capture_mem(struct strings_rec *s, __u32 off, __u8 arg, __u64 addr, __u64 n)
{
	if (n == 0 || n > MEM_CAP || off > SCRATCH - 4 - MEM_CAP)
		return off;
	off = bound(off);
	__u32 len = n & (MEM_CAP * 2 - 1);
	if (len > MEM_CAP)
		return off;
	if (bpf_probe_read_user(&s->buf[off + 4], len, (const void *)addr) < 0)
		return off;
	item(s, off, ITEM_MEM, arg, len);
	return off + 4 + len;
}

/* arg returns argument i of a call, by a constant index (the verifier
 * refuses a variable index into the stack). */
static __always_inline __u64 arg(struct inflight *in, int i)
{
	switch (i) {
	case 0: return in->args[0];
	case 1: return in->args[1];
	case 2: return in->args[2];
	case 3: return in->args[3];
	case 4: return in->args[4];
	case 5: return in->args[5];
	}
	return 0;
}

/* capture sends the strings and structs the arguments of a call point to
 * in a REC_STRINGS record, and returns how many reads failed (a page not
 * yet faulted in: the kernel will have read it by the exit, where the
 * capture is tried again). A global function: the verifier checks it once,
 * not at each call site. */
__attribute__((noinline)) int capture(struct inflight *in, __u32 tid)
{
	if (!in || in->nr >= MAX_NR)
		return 0;
	__u32 key = in->nr;
	struct capture *c = bpf_map_lookup_elem(&captures, &key);
	if (!c || (!c->path_mask && !c->argv_arg && !c->mem_arg) || calls_off())
		return 0;
	__u32 zero = 0;
	struct strings_rec *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	s->kind = REC_STRINGS;
	s->tid = tid;
	s->ts = in->ts;
	s->nr = key;
	__u32 off = 0, missed = 0;
#pragma unroll
	for (int i = 0; i < 6; i++)
		if (c->path_mask & (1 << i))
			off = capture_path(s, off, i, arg(in, i), &missed);
	__u8 a = c->argv_arg;
	if (a >= 1 && a <= 6)
		off = capture_argv(s, off, a - 1, arg(in, a - 1));
	a = c->mem_arg;
	if (a >= 1 && a <= 6) {
		__u64 n = c->mem_len;
		__u8 l = c->mem_len_arg;
		if (l >= 1 && l <= 6)
			n = arg(in, l - 1);
		off = capture_mem(s, off, a - 1, arg(in, a - 1), n);
	}
	off = bound(off);
	s->size = off;
	if (bpf_ringbuf_output(&events, s, sizeof(*s) - sizeof(s->buf) + off, 0) < 0)
		drop();
	return missed;
}

/* capture_out sends, after a successful call, the struct it wrote at an
 * argument and the socklen_t giving its length (accept's peer address):
 * two ITEM_MEM items in a REC_STRINGS record with the call's entry time,
 * which the reader joins to the entry's captures. A global function. */
__attribute__((noinline)) int capture_out(struct inflight *in, __u32 tid)
{
	if (!in || in->nr >= MAX_NR)
		return 0;
	__u32 key = in->nr;
	struct capture *c = bpf_map_lookup_elem(&captures, &key);
	if (!c || !c->out_arg || !c->out_len_arg || calls_off())
		return 0;
	__u8 a = c->out_arg, l = c->out_len_arg;
	if (a < 1 || a > 6 || l < 1 || l > 6)
		return 0;
	__u64 addr = arg(in, a - 1), laddr = arg(in, l - 1);
	if (!addr || !laddr)
		return 0;
	__u32 zero = 0;
	struct strings_rec *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	__u32 n = 0;
	if (bpf_probe_read_user(&n, sizeof(n), (const void *)laddr) < 0)
		return 0;
	s->kind = REC_STRINGS;
	s->tid = tid;
	s->ts = in->ts;
	s->nr = key;
	__u32 off = 0;
	item(s, off, ITEM_MEM, l - 1, 4);
	__builtin_memcpy(&s->buf[4], &n, 4);
	off = 8;
	if (n > MEM_CAP)
		n = MEM_CAP;
	off = capture_mem(s, off, a - 1, addr, n);
	off = bound(off);
	s->size = off;
	if (bpf_ringbuf_output(&events, s, sizeof(*s) - sizeof(s->buf) + off, 0) < 0)
		drop();
	return 0;
}

/* noreturn sends the record of an exit or exit_group at its entry. */
static __always_inline void noreturn(struct inflight *in, __u32 tid)
{
	if (calls_off())
		return;
	struct call_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		drop();
		return;
	}
	r->kind = REC_NORETURN;
	r->tgid = in->tgid;
	r->tid = tid;
	r->nr = in->nr;
	__builtin_memcpy(r->args, in->args, sizeof(r->args));
	r->ret = 0;
	r->ts = in->ts;
	r->dur = 0;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
}

/* sys_enter and sys_exit are BTF-enabled raw tracepoints (tp_btf): the
 * same tracepoints as raw_tracepoint/, with task-local storage. */
SEC("tp_btf/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct task_struct *task = bpf_get_current_task_btf();
	/* A thread has storage once it made a traced call, so it is wanted:
	 * a storage lookup (a pointer in the task) instead of the targets
	 * hash at each of its calls. In a cgroup, it must still be there. */
	struct inflight *in = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!in) {
		if (!wanted(tgid))
			return 0;
	} else if (target_cgroup && !use_targets && bpf_get_current_cgroup_id() != target_cgroup) {
		return 0;
	}
	long nr = ctx->args[1];
	if (nr < 0 || nr >= MAX_NR)
		return 0;
	__u32 key = nr;
	if (use_filter) {
		__u8 *f = bpf_map_lookup_elem(&sysfilter, &key);
		if (!f || !*f)
			return 0;
	}
	if (!in) {
		in = bpf_task_storage_get(&inflight, task, 0, STORAGE_GET_F_CREATE);
		if (!in) {
			drop();
			return 0;
		}
	}
	in->ts = bpf_ktime_get_ns();
	in->nr = key;
	in->tgid = tgid;
	in->missed = 0;
	/* Past max_events only the counters are kept: no arguments needed. */
	if (!calls_off()) {
		read_args((struct pt_regs *)ctx->args[0], in->args);
		struct capture *c = bpf_map_lookup_elem(&captures, &key);
		if (c && (c->path_mask || c->argv_arg || c->mem_arg))
			in->missed = capture(in, tid);
	}
	if (key == nr_exit || key == nr_exit_group) {
		noreturn(in, tid);
		in->live = 0;
		return 0;
	}
	in->live = 1;
	return 0;
}

/* is_exec reports whether nr is execve or execveat, which capture argv. */
static __always_inline int is_exec(__u32 nr)
{
	struct capture *c = bpf_map_lookup_elem(&captures, &nr);
	return c && c->argv_arg;
}

SEC("tp_btf/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct inflight *in = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
	if (in && !in->live)
		return 0; /* a call sys_enter left out (the syscall filter) */
	__u64 now = bpf_ktime_get_ns();
	struct inflight early = {};
	if (!in) {
		/* A call of a target that entered before the programs were
		 * attached (a server blocked in accept): its exit is recorded,
		 * with its arguments from the registers and no known entry
		 * (ts = now: it lasted 0 ns as far as the sample knows). */
		__u32 tgid = id >> 32;
		if (!wanted(tgid))
			return 0;
		struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
		long nr = syscall_nr(regs);
		if (nr < 0 || nr >= MAX_NR)
			return 0;
		__u32 k = nr;
		if (use_filter) {
			__u8 *f = bpf_map_lookup_elem(&sysfilter, &k);
			if (!f || !*f)
				return 0;
		}
		early.ts = now;
		early.nr = k;
		early.tgid = tgid;
		read_args(regs, early.args);
		in = &early;
	}
	__s64 ret = ctx->args[1];
	__u32 key = in->nr;
	/* A path read failed at entry: the kernel has faulted its page in
	 * since. Not after a successful execve, whose memory is gone. */
	if (in->missed && !(ret == 0 && is_exec(key)))
		capture(in, tid);
	if (ret >= 0) {
		struct capture *c = bpf_map_lookup_elem(&captures, &key);
		if (c && c->out_arg)
			capture_out(in, tid);
	}
	struct count *n = bpf_map_lookup_elem(&counts, &key);
	if (n) {
		n->calls++;
		if (ret < 0 && ret >= -4095)
			n->errors++;
		n->ns += now - in->ts;
	}
	if (!calls_off()) {
		struct call_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
		if (r) {
			r->kind = REC_CALL;
			r->tgid = id >> 32;
			r->tid = tid;
			r->nr = key;
			__builtin_memcpy(r->args, in->args, sizeof(r->args));
			r->ret = ret;
			r->ts = in->ts;
			r->dur = now - in->ts;
			bpf_get_current_comm(r->comm, sizeof(r->comm));
			bpf_ringbuf_submit(r, 0);
		} else {
			drop();
		}
	}
	in->live = 0;
	return 0;
}

SEC("raw_tracepoint/sched_process_fork")
int process_fork(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 ptgid = id >> 32;
	if (!wanted(ptgid))
		return 0;
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	int cpid = 0, ctgid = 0;
	bpf_probe_read_kernel(&cpid, sizeof(cpid), &child->pid);
	bpf_probe_read_kernel(&ctgid, sizeof(ctgid), &child->tgid);
	__u32 ct = ctgid;
	if (follow && use_targets && ct != ptgid) {
		__u8 one = 1;
		bpf_map_update_elem(&targets, &ct, &one, BPF_NOEXIST);
	}
	struct fork_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		drop();
		return 0;
	}
	r->kind = REC_FORK;
	r->parent_tgid = ptgid;
	r->parent_tid = (__u32)id;
	r->child_tgid = ctgid;
	r->child_tid = cpid;
	r->pad = 0;
	r->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("raw_tracepoint/sched_process_exec")
int process_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!wanted(id >> 32))
		return 0;
	struct exec_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		drop();
		return 0;
	}
	r->kind = REC_EXEC;
	r->tgid = id >> 32;
	r->tid = (__u32)id;
	r->old_tid = (__u32)ctx->args[1];
	r->ts = bpf_ktime_get_ns();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	struct linux_binprm *b = (struct linux_binprm *)ctx->args[2];
	const char *fn = 0;
	bpf_probe_read_kernel(&fn, sizeof(fn), &b->filename);
	if (bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), fn) < 0)
		r->filename[0] = 0;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int process_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!wanted(id >> 32))
		return 0;
	struct task_struct *t = (struct task_struct *)ctx->args[0];
	int code = 0;
	bpf_probe_read_kernel(&code, sizeof(code), &t->exit_code);
	struct exit_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		drop();
		return 0;
	}
	r->kind = REC_EXIT;
	r->tgid = id >> 32;
	r->tid = (__u32)id;
	r->code = code;
	r->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, 0);
	return 0;
}
