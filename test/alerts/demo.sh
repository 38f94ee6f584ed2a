#!/usr/bin/env bash
# demo.sh — the seed incident through a real alert pipeline (run by `make demo-alerts`):
# Prometheus scrapes the kubelet's readiness probe results, KdiagPodNotReady fires, Alertmanager
# posts it to kdiag serve, which diagnoses the pod under dry-run; the alert persisting fires
# KdiagPodNotReadyPersistent, whose route fixes the pod. Then the alerts resolve. The pipeline
# (Prometheus, Alertmanager, kdiag serve) is stopped at the end; the cluster stays up.
# Runs, logs and configs stay in $KDIAG_ALERTS_STATE (default .kdiag/alerts).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export KDIAG=${KDIAG:-$ROOT/bin/kdiag}
export KDIAG_ALERTS_STATE=${KDIAG_ALERTS_STATE:-$ROOT/.kdiag/alerts}
export KDIAG_ALERTS_NAMESPACES=alerts-demo
NS=alerts-demo POD=my-broken-pod
PIPELINE=test/alerts/pipeline.sh
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date -u +%T; }

eval "$(test/cluster/cluster.sh env)"
export KUBECONFIG CONTAINER_RUNTIME_ENDPOINT

say "building the broken app's image (kdiag-broken-app:v1)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; bash $PIPELINE down' EXIT
trap 'exit 130' INT TERM
CGO_ENABLED=0 go build -o "$tmp/broken-app" ./examples/broken-pod/app
test/cluster/cluster.sh image kdiag-broken-app:v1 "$tmp/broken-app"

say "starting Prometheus, Alertmanager and kdiag serve (fresh state in $KDIAG_ALERTS_STATE)"
bash $PIPELINE down >/dev/null 2>&1 || true
rm -rf "$KDIAG_ALERTS_STATE"
bash $PIPELINE up
eval "$(bash $PIPELINE env)"
TOKEN=$(cat "$KDIAG_ALERTS_TOKEN_FILE")
sed -n '/^  - name: pod-not-ready/,$p' "$KDIAG_ALERTS_STATE/serve/playbooks.yaml"

say "applying the incident in namespace $NS: ConfigMap myconfig + Pod $POD"
kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$NS" >/dev/null
sed "s/namespace: default/namespace: $NS/" examples/broken-pod/manifests.yaml | kubectl apply -f -

# runs prints kdiag serve's runs as "ID STATUS ROUTE", oldest first; alerts Prometheus's
# alerts of the namespace as NAME=STATE.
runs() {
  curl -sf -H "Authorization: Bearer $TOKEN" "$KDIAG_ALERTS_SERVE_URL/runs" | jq -r 'reverse[] | "\(.id) \(.status) \(.route)"'
}
alerts() {
  curl -sf "$KDIAG_ALERTS_PROMETHEUS_URL/api/v1/alerts" |
    jq -r --arg ns "$NS" '[.data.alerts[] | select(.labels.namespace == $ns) | "\(.labels.alertname)=\(.state)"] | sort | join(" ")'
}

say "watching the pod, Prometheus's alerts and kdiag serve's runs until the fix ended and the alerts resolved"
last="" t0=$SECONDS ok=""
for i in $(seq 1 300); do
  pod=$(kubectl -n "$NS" get pod "$POD" -o jsonpath='{.status.phase} ready={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  a=$(alerts || true)
  r=$(runs | while read -r _ status route; do printf '%s %s; ' "$route" "$status"; done || true)
  line="pod: ${pod:-none} | alerts: ${a:-none} | runs: ${r:-none}"
  [ "$line" != "$last" ] && printf '+%3ss %s\n' $((SECONDS - t0)) "$line" && last=$line
  [[ $r == *"pod-not-ready-fix failed"* ]] && break
  [[ $r == *"pod-not-ready-fix ok"* ]] && [ -z "$a" ] && [[ $pod == *ready=True ]] && ok=1 && break
  sleep 1
done
[ -n "$ok" ] || echo "the pipeline did not fix the pod and resolve the alerts (see the runs below; logs: $KDIAG_ALERTS_STATE/logs" >&2

for id in $(runs | awk '{print $1}'); do
  say "run $id"
  curl -sf -H "Authorization: Bearer $TOKEN" "$KDIAG_ALERTS_SERVE_URL/runs/$id?format=text"
done

say "kdiag serve's counters"
curl -sf "$KDIAG_ALERTS_SERVE_URL/metrics" | grep -E '^kdiag_(alerts_received|alerts_ignored|runs)_total'

say "the pod after the fix"
kubectl -n "$NS" get pod "$POD"
kubectl -n "$NS" get configmap myconfig -o jsonpath='{.data}'; echo
echo
echo "runs: $KDIAG_ALERTS_STATE/serve/store/runs (kdiag report DIR/transcript.jsonl); logs: $KDIAG_ALERTS_STATE/logs"
echo "delete the namespace with: kubectl delete namespace $NS"
[ -n "$ok" ]
