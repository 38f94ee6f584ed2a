#!/usr/bin/env bash
# setup.sh — build the config-file-missing app's image (kdiag-config-app:v1),
# import it into the local cluster and apply the incident in namespace $1
# (default: config-file-missing).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NS=${1:-config-file-missing}
cd "$ROOT"
eval "$(test/cluster/cluster.sh env)"
export KUBECONFIG
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/config-app" ./examples/config-file-missing/app
test/cluster/cluster.sh image kdiag-config-app:v1 "$tmp/config-app"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NS" -f examples/config-file-missing/manifests.yaml
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Running pod/billing --timeout=60s
