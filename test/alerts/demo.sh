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

# runs prints kdiag serve's runs as "ID STATUS ROUTE", oldest first.
runs() {
  curl -sf -H "Authorization: Bearer $TOKEN" "$KDIAG_ALERTS_SERVE_URL/runs" |
    grep -o '"id":"[^"]*","status":"[^"]*","route":"[^"]*"' | sed 's/"[a-z]*":"\([^"]*\)"/\1/g; s/,/ /g' | tac
}
alerts() {
  curl -sf "$KDIAG_ALERTS_PROMETHEUS_URL/api/v1/alerts" |
    grep -o '"alertname":"[^"]*"[^}]*"namespace":"'"$NS"'"[^}]*}[^}]*}[^"]*"state":"[a-z]*"' |
    sed 's/.*"alertname":"\([^"]*\)".*"state":"\([a-z]*\)"/\1=\2/' | sort | tr '\n' ' '
}

say "watching: pod, Prometheus alerts, kdiag serve runs (until the fix ended and the alerts resolved)"
last="" fixed=""
for i in $(seq 1 600); do
  pod=$(kubectl -n "$NS" get pod "$POD" -o jsonpath='{.status.phase} ready={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  a=$(alerts || true)
  r=$(runs | tr '\n' ';' || true)
  line="pod: $pod | alerts: ${a:-none} | runs: ${r:-none}"
  [ "$line" != "$last" ] && echo "$(now) $line" && last=$line
  if [ -z "$fixed" ] && echo "$r" | grep -Eq 'pod-not-ready-fix;?$' && ! echo "$r" | grep -Eq '(queued|running) pod-not-ready-fix'; then
    fixed=$(now)
  fi
  [ -n "$fixed" ] && [ -z "$a" ] && [[ $pod == *ready=True ]] && break
  sleep 1
done

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
