#!/usr/bin/env bash
# node-agent.sh — one http_probe into a pod's network namespace through the
# node agent's session (one long-lived pods/exec of `kdiag agent session`
# carrying every call), through the agent with one exec per call (what
# each call cost before sessions), run locally on the node (node.Local),
# and with the off-node standard tool, `kubectl exec POD -- wget`,
# alternating call by call on the project's local cluster; then probes
# 8 at a time over one session; then the cost of starting and deleting an
# agent pod.
#
# Runs the Go benchmarks BenchmarkHTTPProbe, BenchmarkHTTPProbeParallel and
# BenchmarkAgentStart of builtins/agent (they build kdiag and import it as
# kdiag-local:agent-e2e).
#
# Needs root and the cluster (test/cluster/cluster.sh all). Usage:
#   bench/node-agent.sh [N]      N probes of each (default 30); 5 agent starts
set -euo pipefail

N=${1:-30}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "node-agent: needs root (the local cluster)" >&2; exit 1; }
test/cluster/cluster.sh status >/dev/null 2>&1 || test/cluster/cluster.sh all

log=${TMPDIR:-/tmp}/node-agent-bench.log
bench() { go test -run '^$' -bench "^$1\$" -benchtime "$2" -count 1 -timeout 30m ./builtins/agent/ 2>>"$log" | tee -a "$log" ||
	{ echo "node-agent: $1 failed (log: $log)" >&2; exit 1; }; }
: >"$log"
out=$(bench BenchmarkHTTPProbe "${N}x"; bench BenchmarkHTTPProbeParallel "$((N * 4))x"; bench BenchmarkAgentStart 5x)
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^BenchmarkHTTPProbe-/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "http_probe: agent session %.1f ms, agent exec per call %.1f ms, local %.2f ms, kubectl exec wget %.1f ms: exec-per-call/session %.1fx, kubectl-exec/session %.1fx\n",
			m["session-ms"], m["exec-per-call-ms"], m["local-ms"], m["kubectl-exec-ms"], m["exec-per-call/session"], m["kubectl-exec/session"]
	}
	/^BenchmarkHTTPProbeParallel/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "http_probe, 8 in flight over one session: %.1f ms wall per probe\n", m["wall-ms/probe"]
	}
	/^BenchmarkAgentStart/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "agent pod: first call (create, start, find_pid) %.0f ms, deletion until gone %.0f ms\n", m["first-call-ms"], m["delete-ms"]
	}'
