#!/usr/bin/env bash
# bench/seed-diagnosis.sh — the seed incident's diagnosis, kdiag vs the manual toolchain.
#
# Times, on the same cluster and the same broken pod, in one run:
#   kdiag:  kdiag run readiness-probe-failing (fix=false, ephemeral=false; the container's
#           trace ends once kdiag's own probe is answered, $TRACE s at the most)
#   manual: the same steps as a shell script — kubectl get/describe/logs, kubectl debug
#           --target + kubectl exec ps/ls, crictl pods/ps/inspect | jq .info.pid,
#           nsenter -n curl, timeout $TRACE strace -f -p PID, ls /proc/PID/root/...,
#           kubectl get configmap
# and prints each and the ratio kdiag/manual, in total and without the trace window both
# spend waiting. Needs root and the local cluster (make cluster-up); usage:
#   bench/seed-diagnosis.sh [ROUNDS]        (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
TRACE=${TRACE:-2}
EPHEMERAL=${EPHEMERAL:-0}   # 1: both also start an ephemeral debug container (kubectl debug)
eval "$(test/cluster/cluster.sh env)"
export KUBECONFIG CONTAINER_RUNTIME_ENDPOINT
NS=bench-seed
make -s build
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kubectl delete ns $NS --wait=false >/dev/null 2>&1 || true' EXIT
CGO_ENABLED=0 go build -o "$tmp/broken-app" ./examples/broken-pod/app
test/cluster/cluster.sh image kdiag-broken-app:v1 "$tmp/broken-app" >/dev/null
kubectl wait --for=delete ns/$NS --timeout=120s >/dev/null 2>&1 || true
kubectl create ns $NS >/dev/null 2>&1 || true
sed "s/namespace: default/namespace: $NS/" examples/broken-pod/manifests.yaml | kubectl apply -f - >/dev/null
kubectl -n $NS wait --for=jsonpath='{.status.containerStatuses[1].started}'=true pod/my-broken-pod --timeout=90s >/dev/null

manual() {
  local pod=my-broken-pod c=broken-container
  kubectl -n $NS get pod $pod -o json > "$tmp/pod.json"
  kubectl -n $NS get events --field-selector involvedObject.name=$pod > /dev/null
  kubectl -n $NS logs $pod -c $c --tail=20 > /dev/null
  if [ "$EPHEMERAL" = 1 ]; then
    local dbg; dbg=kdbg-$RANDOM
    kubectl -n $NS debug $pod --image=busybox-local:v1 --image-pull-policy=Never --target=$c --container=$dbg -- sleep 3600 > /dev/null 2>&1
    until [ "$(kubectl -n $NS get pod $pod -o jsonpath="{.status.ephemeralContainerStatuses[?(@.name==\"$dbg\")].state.running.startedAt}")" != "" ]; do sleep 0.2; done
    kubectl -n $NS exec $pod -c $dbg -- ps > /dev/null
    kubectl -n $NS exec $pod -c $dbg -- ls -la /proc/1/root/opt/config > /dev/null
  fi
  local sb cid pid
  sb=$(crictl pods --name $pod --namespace $NS -q | head -1)
  cid=$(crictl ps --pod "$sb" --name "^$c\$" -q | head -1)
  pid=$(crictl inspect "$cid" | jq .info.pid)
  nsenter -t "$pid" -n curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3000/readyz > /dev/null || true
  timeout "$TRACE" strace -f -qq -p "$pid" -o "$tmp/strace.out" || true
  ls -la /proc/"$pid"/root/opt/config > /dev/null
  kubectl -n $NS get configmap myconfig -o json > /dev/null
}

kdiag_run() {
  local eph=false; [ "$EPHEMERAL" = 1 ] && eph=true
  # trace is only the longest the sample may last: it ends after kdiag's own probe.
  bin/kdiag run readiness-probe-failing -p pod=my-broken-pod -p namespace=$NS -p fix=false -p ephemeral=$eph -p trace=${TRACE}s --yes --no-record > /dev/null 2>&1
}

now() { date +%s.%N; }
tk=0; tm=0
for i in $(seq "$ROUNDS"); do
  t0=$(now); kdiag_run; t1=$(now); manual; t2=$(now)
  tk=$(echo "$tk + $t1 - $t0" | bc); tm=$(echo "$tm + $t2 - $t1" | bc)
done
k=$(echo "scale=3; $tk / $ROUNDS" | bc); m=$(echo "scale=3; $tm / $ROUNDS" | bc)
printf 'seed diagnosis, mean of %d rounds (manual: strace for %ss; kdiag: until its probe is answered and a ConfigMap mount was touched, %ss at most):\n' "$ROUNDS" "$TRACE" "$TRACE"
printf '  kdiag run readiness-probe-failing   %6.3fs\n' "$k"
printf '  manual kubectl/crictl/nsenter/curl/strace script %6.3fs\n' "$m"
printf '  ratio kdiag/manual                  %6.2f\n' "$(echo "scale=4; $k / $m" | bc)"
