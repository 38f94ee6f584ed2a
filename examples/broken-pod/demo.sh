#!/usr/bin/env bash
# demo.sh — the seed incident end to end on the local cluster (run by `make demo`):
# build the broken app's image, apply the incident, wait until the pod is Running but
# not Ready, let kdiag diagnose and fix it unattended, and show the pod Ready 2/2.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
KDIAG=${KDIAG:-$ROOT/bin/kdiag}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

eval "$(test/cluster/cluster.sh env)"
export KUBECONFIG CONTAINER_RUNTIME_ENDPOINT

say "building the broken app's image (kdiag-broken-app:v1)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/broken-app" ./examples/broken-pod/app
test/cluster/cluster.sh image kdiag-broken-app:v1 "$tmp/broken-app"

say "applying the incident: ConfigMap myconfig + Pod my-broken-pod"
kubectl delete pod my-broken-pod --ignore-not-found --wait=true --grace-period=1 >/dev/null
kubectl apply -f examples/broken-pod/manifests.yaml

say "waiting until my-broken-pod is Running but not Ready"
for i in $(seq 1 120); do
  phase=$(kubectl get pod my-broken-pod -o jsonpath='{.status.phase}' 2>/dev/null || true)
  ready=$(kubectl get pod my-broken-pod -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  unready=$(kubectl get pod my-broken-pod -o jsonpath='{.status.containerStatuses[?(@.name=="broken-container")].started}' 2>/dev/null || true)
  if [ "$phase" = Running ] && [ "$ready" = False ] && [ "$unready" = true ]; then break; fi
  sleep 0.5
done
kubectl get pod my-broken-pod

say "kdiag run readiness-probe-failing (diagnosis only: the evidence is correlational)"
mkdir -p .kdiag
"$KDIAG" run readiness-probe-failing -p pod=my-broken-pod -n default -p ephemeral=false -p fix=false --no-record

say "kdiag run readiness-probe-failing -p force=true (unattended: --yes; the fix is verified or rolled back)"
# The seed app checks the file in a background loop, not while serving /readyz,
# so the runbook calls it a suspect; force=true applies the fix as an experiment
# that proves itself (the pod becomes Ready) or undoes itself.
"$KDIAG" run readiness-probe-failing -p pod=my-broken-pod -n default -p force=true --yes \
  --record .kdiag/demo.jsonl

say "the pod after the fix"
kubectl get pod my-broken-pod
kubectl get configmap myconfig -o jsonpath='{.data}'; echo
echo
echo "transcript: .kdiag/demo.jsonl   (kdiag report .kdiag/demo.jsonl; kdiag undo .kdiag/demo.jsonl)"
