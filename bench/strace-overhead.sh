#!/usr/bin/env bash
# strace-overhead.sh — how much strace_sample slows a syscall-heavy process
# down, versus `strace -f -p PID -o /dev/null`, same target, same run.
#
# Runs the Go benchmark BenchmarkStraceOverhead of builtins/node: a target
# calls getppid(2) in a loop and prints its count every 50 ms; each round
# measures its throughput for 1 s untraced, under strace_sample and under
# strace, alternating, and the benchmark reports the medians. kdiag/strace
# is the ratio of the slowdowns: below 1, strace_sample costs the target
# less than strace does.
#
# Needs root, strace and go. Usage: bench/strace-overhead.sh [ROUNDS]
set -euo pipefail

ROUNDS=${1:-5}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "strace-overhead: needs root (ptrace)" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace-overhead: strace is not installed (apt-get install strace)" >&2; exit 1; }

out=$(go test -run '^$' -bench '^BenchmarkStraceOverhead$' -benchtime "${ROUNDS}x" -count 1 -timeout 10m ./builtins/node/)
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^BenchmarkStraceOverhead/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "getppid calls/s: untraced %.0f, strace_sample %.0f, strace %.0f\n", m["untraced-ops/s"], m["kdiag-ops/s"], m["strace-ops/s"]
		printf "slowdown: strace_sample %.1fx, strace %.1fx; kdiag/strace %.2f (goal <= 1)\n", m["kdiag-slowdown"], m["strace-slowdown"], m["kdiag/strace"]
	}'
