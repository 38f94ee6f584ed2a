#!/usr/bin/env bash
# strace-overhead.sh — how much strace_sample slows a syscall-heavy process
# down, versus `strace -f -p PID -o /dev/null`, same target, same run.
#
# Runs the Go benchmark BenchmarkStraceOverhead of builtins/trace: a target
# calls getppid(2) in a loop and prints its count every 50 ms; each round
# measures its throughput for 1 s untraced, under strace_sample's ptrace
# backend, under its eBPF backend (max_events 10000, the default, and
# every call recorded) and under strace, alternating, and the benchmark
# reports the medians. kdiag/strace is the ratio of the slowdowns: below
# 1, strace_sample costs the target less than strace does; ebpf/untraced
# is the throughput the target keeps under eBPF (goal >= 0.9). Then the
# cost of an eBPF sample's load+attach+detach (BenchmarkAttachDetach) and
# the call records/s the ring buffer delivers (BenchmarkEBPFEventRate),
# and the floor of any sys_enter/sys_exit tracer: getppid per CPU-second
# with empty programs attached, against kdiag's programs counting only and
# recording every call, alternating in rounds (BenchmarkGetppidFloor).
#
# Needs root, strace and go. Usage: bench/strace-overhead.sh [ROUNDS]
set -euo pipefail

ROUNDS=${1:-5}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "strace-overhead: needs root (ptrace)" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace-overhead: strace is not installed (apt-get install strace)" >&2; exit 1; }

out=$(go test -run '^$' -bench '^(BenchmarkStraceOverhead|BenchmarkEBPFEventRate)$' -benchtime "${ROUNDS}x" -count 1 -timeout 10m ./builtins/trace/)
out="$out
$(go test -run '^$' -bench '^BenchmarkAttachDetach$' -benchtime "${ROUNDS}x" -count 1 -timeout 10m ./builtins/trace/ebpf/)
$(go test -run '^$' -bench '^BenchmarkGetppidFloor$' -benchtime 15x -count 1 -timeout 10m ./builtins/trace/ebpf/)"
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^BenchmarkStraceOverhead/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "getppid calls/s: untraced %.0f, strace_sample ptrace %.0f, eBPF %.0f, eBPF every call %.0f, strace %.0f\n", m["untraced-ops/s"], m["kdiag-ops/s"], m["ebpf-ops/s"], m["ebpf-all-ops/s"], m["strace-ops/s"]
		printf "slowdown: strace_sample ptrace %.1fx, strace %.1fx; kdiag/strace %.2f (goal <= 1)\n", m["kdiag-slowdown"], m["strace-slowdown"], m["kdiag/strace"]
		printf "eBPF traced/untraced: %.3f (max_events 10000), %.3f (every call recorded); goal >= 0.9\n", m["ebpf/untraced"], m["ebpf-all/untraced"]
		printf "eBPF traced/untraced per CPU-second of the target: %.3f (max_events 10000), %.3f (every call recorded)\n", m["ebpf/untraced-cpu"], m["ebpf-all/untraced-cpu"]
	}
	/^BenchmarkEBPFEventRate/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "eBPF ring buffer: %.0f records/s delivered, %.0f dropped/s, of %.0f calls/s\n", m["records/s"], m["dropped/s"], m["calls/s"]
	}
	/^BenchmarkAttachDetach/ { printf "eBPF load+attach+detach (1 ms sample): %.1f ms\n", $3 / 1e6 }
	/^BenchmarkGetppidFloor/ {
		for (i = 3; i < NF; i++) if ($(i+1) ~ /\/untraced$/) printf "getppid per CPU-second, %s: %.3f of untraced (median of alternating rounds)\n", $(i+1), $i
	}'
