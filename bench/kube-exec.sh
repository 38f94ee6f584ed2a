#!/usr/bin/env bash
# kube-exec.sh — kdiag's exec and attach_ephemeral versus `kubectl exec` and
# `kubectl debug --target -i` on the project's local cluster, same run,
# same pod, alternating call by call.
#
# Runs the Go benchmarks BenchmarkExec and BenchmarkAttachEphemeral of
# builtins/kube (which time both sides) and prints per-call milliseconds and
# the kubectl/kdiag ratio (above 1: kdiag is faster). kubectl is the
# cluster's own (same version as the API server).
#
# Needs root and the cluster (test/cluster/cluster.sh all). Usage:
#   bench/kube-exec.sh [N]      N calls of each (default 20)
set -euo pipefail

N=${1:-20}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "kube-exec: needs root (the local cluster)" >&2; exit 1; }
test/cluster/cluster.sh status >/dev/null 2>&1 || test/cluster/cluster.sh all

out=$(go test -run '^$' -bench '^(BenchmarkExec|BenchmarkAttachEphemeral)$' -benchtime "${N}x" -count 1 -timeout 30m ./builtins/kube/)
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
		for (i = 3; i < NF; i++) {
			if ($(i+1) == "kdiag-ms/op") k = $i
			if ($(i+1) == "kubectl-ms/op") c = $i
			if ($(i+1) == "kubectl/kdiag") r = $i
		}
		printf "%-16s kdiag %8.1f ms   kubectl %8.1f ms   kubectl/kdiag %5.2fx\n", name, k, c, r
	}'
