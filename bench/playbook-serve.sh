#!/usr/bin/env bash
# playbook-serve.sh — kdiag serve turning alerts into stored runs, versus
# the usual alternative: a webhook-to-script bridge that execs `kdiag run`
# for each alert. Same runbook (playbook/testdata/slow.star, wait=0s: two
# recorded steps, no cluster), same params, one run at a time on both
# sides. The server's figure includes the HTTP POST, routing, the run,
# three rendered reports and run.json; the bridge's includes process start
# and the text report.
#
# Also reports the cost of a webhook that starts nothing (deduplicated).
# Needs no cluster. Usage:
#   bench/playbook-serve.sh [N]      N alerts on each side (default 200)
set -euo pipefail

N=${1:-200}
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench '^Benchmark(AlertToStoredRun|ExecKdiagRunPerAlert)$' -benchtime "${N}x" -count 1 ./playbook/)
dedupe=$(go test -run '^$' -bench '^BenchmarkWebhookDeduplicated$' -benchtime 2s -count 1 ./playbook/)
printf '%s\n%s\n' "$out" "$dedupe" | grep -E '^(Benchmark|goos|goarch|cpu)' || true
echo
printf '%s\n%s\n' "$out" "$dedupe" | awk '
	/^BenchmarkAlertToStoredRun/ { serve = $3 / 1e6 }
	/^BenchmarkExecKdiagRunPerAlert/ { bridge = $3 / 1e6 }
	/^BenchmarkWebhookDeduplicated/ { dd = $3 / 1e3 }
	END {
		printf "alert to stored run: kdiag serve %.1f ms, exec kdiag run %.1f ms: serve/exec %.2f (goal <= 1)\n", serve, bridge, serve / bridge
		printf "deduplicated webhook round trip: %.0f us\n", dd
	}'
