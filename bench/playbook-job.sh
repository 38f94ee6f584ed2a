#!/usr/bin/env bash
# playbook-job.sh — an alert to a stored run through kdiag serve's Job
# executor (a Job per run, the transcript streamed back through the pod's
# log, the Job deleted) versus the in-process executor, and versus doing
# the Job's part by hand with the standard tool: kubectl create job (the
# same kdiag run in the same image), kubectl wait, kubectl logs, kubectl
# delete. Runbook wait-and-log, wait=0s; one run at a time, alternating.
#
# Runs BenchmarkJobRun of test/e2e (it builds kdiag and imports it as
# kdiag-local:playbook-bench). Needs root and the cluster. Usage:
#   bench/playbook-job.sh [N]      N runs of each (default 10)
set -euo pipefail

N=${1:-10}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "playbook-job: needs root (the local cluster)" >&2; exit 1; }
test/cluster/cluster.sh status >/dev/null 2>&1 || test/cluster/cluster.sh all

out=$(go test -run '^$' -bench '^BenchmarkJobRun$' -benchtime "${N}x" -count 1 -timeout 30m ./test/e2e/ 2>>"${TMPDIR:-/tmp}/playbook-job-bench.log")
echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
echo "$out" | awk '
	/^BenchmarkJobRun/ {
		for (i = 3; i < NF; i++) m[$(i+1)] = $i
		printf "alert to stored run: job executor %.0f ms, kubectl create job/wait/logs/delete %.0f ms, local executor %.0f ms: job/kubectl %.2f (goal <= 1)\n",
			m["job-ms"], m["kubectl-job-ms"], m["local-ms"], m["job/kubectl"]
	}'
