#!/usr/bin/env bash
# find-pid.sh — find_pid (one CRI connection: Version, ListPodSandbox,
# ListContainers, ContainerStatus) versus the three crictl invocations it
# replaces (crictl pods --name, crictl ps --pod, crictl inspect), on the
# project's local cluster, same pod, alternating call by call.
#
# Runs the Go benchmark BenchmarkFindPID of builtins/cri, which times both
# sides and checks they agree on the PID. find_pid/crictl below 1 means
# find_pid is faster (goal <= 0.2). crictl is the cluster's own build.
#
# Needs root and the cluster (test/cluster/cluster.sh all). Usage:
#   bench/find-pid.sh [N]      N lookups of each (default 50)
set -euo pipefail

N=${1:-50}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "find-pid: needs root (the local cluster)" >&2; exit 1; }
test/cluster/cluster.sh status >/dev/null 2>&1 || test/cluster/cluster.sh all

out=$(go test -run '^$' -bench '^BenchmarkFindPID$' -benchtime "${N}x" -count 1 -timeout 30m ./builtins/cri/)
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^BenchmarkFindPID/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "find_pid %.2f ms, crictl pods+ps+inspect %.2f ms: find_pid/crictl %.3f (goal <= 0.2)\n", m["find_pid-ms"], m["crictl-ms"], m["find_pid/crictl"]
	}'
