#!/usr/bin/env bash
# smoke.sh — end-to-end check of a running test cluster (run after `cluster.sh up`, as root).
# Exercises what kdiag needs: configmap JSON patch, apiserver validation of ephemeralContainers,
# a pod Ready via an httpGet readiness probe, exec, logs, `kubectl debug --target` ephemeral
# container, host PID via crictl inspect, nsenter into the container, strace of it.
# Works in its own namespace (kdiag-smoke), deleted at the end unless KEEP=1. Exit status = failures.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$HERE/cluster.sh" env)"
NS=kdiag-smoke
K=(kubectl -n "$NS")
ok=0 bad=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# check DESC CMD...: run CMD, print PASS/FAIL (with the output tail on failure).
check() {
  local d=$1 out; shift
  if out=$("$@" 2>&1); then echo "PASS $d"; ok=$((ok + 1)); else
    echo "FAIL $d"; echo "$out" | tail -8 | sed 's/^/    /'; bad=$((bad + 1)); fi
}

kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null 2>&1
check "namespace create" kubectl create namespace "$NS"
check "default serviceaccount" bash -c "for i in \$(seq 60); do kubectl -n $NS get sa default && exit 0; sleep 0.5; done; exit 1"
check "kubectl client/server versions" bash -c 'kubectl version -o json | jq -e ".clientVersion.gitVersion == .serverVersion.gitVersion"'

check "configmap create" "${K[@]}" create configmap smoke-cm --from-literal=main_file=a --from-literal=additional_file=b
check "configmap json-patch remove" "${K[@]}" patch configmap smoke-cm --type=json -p '[{"op":"remove","path":"/data/additional_file"}]'
check "configmap key gone" bash -c "[ -z \"\$(kubectl -n $NS get cm smoke-cm -o jsonpath={.data.additional_file})\" ] && [ \"\$(kubectl -n $NS get cm smoke-cm -o jsonpath={.data.main_file})\" = a ]"

# eph_on_create: creating a pod with ephemeralContainers must be refused by the apiserver.
eph_on_create() {
  local out
  out=$("${K[@]}" apply -f - 2>&1 <<'Y'
apiVersion: v1
kind: Pod
metadata: {name: smoke-eph-on-create}
spec:
  containers: [{name: main, image: busybox-local:v1, command: [sleep, "3600"]}]
  ephemeralContainers: [{name: dbg, image: busybox-local:v1, command: [sh]}]
Y
  )
  echo "$out"
  grep -q 'spec.ephemeralContainers: Forbidden' <<<"$out"
}
check "ephemeralContainers on create is Forbidden" eph_on_create

check "pod create" "${K[@]}" apply -f - <<Y
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: $KDIAG_CLUSTER_NODE
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: httpserver-local:v1
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
Y
s=$SECONDS
check "pod Ready (httpGet readiness probe)" "${K[@]}" wait --for=condition=Ready pod/web --timeout=120s
echo "     (pod Ready after $((SECONDS - s))s)"
check "kubectl exec" bash -c "kubectl -n $NS exec web -c web -- sh -c 'echo hi-from-\$(hostname); id; ls / ; cat /etc/passwd; ps' | grep -q hi-from-web"
check "kubectl logs" bash -c "ip=\$(kubectl -n $NS get pod web -o jsonpath={.status.podIP}); curl -sf --max-time 5 http://\$ip:8080/ && kubectl -n $NS logs web | grep -q 'GET /'"
check "kubectl debug --target (ephemeral container sees target processes)" bash -c "kubectl -n $NS debug web -it --attach=true --image=busybox-local:v1 --target=web --container=dbg1 -- sh -c ps </dev/null | tee /dev/stderr | grep -q httpserver"
check "ephemeral container status" bash -c "kubectl -n $NS get pod web -o jsonpath='{.status.ephemeralContainerStatuses[0].name}' | grep -q dbg1"

CID=$("${K[@]}" get pod web -o jsonpath='{.status.containerStatuses[0].containerID}')
CID=${CID#containerd://}
PID=$(crictl inspect -o go-template --template '{{.info.pid}}' "$CID" 2>/dev/null)
echo "     container $CID host pid $PID"
check "host PID via crictl inspect" test -n "$PID" -a -d "/proc/$PID"
check "nsenter into the container" bash -c "nsenter -t $PID -m -u -i -n -p -- /bin/sh -c 'hostname; cat /proc/1/cmdline | tr \"\\0\" \" \"' | tee /dev/stderr | grep -q web"
check "strace the container process" bash -c "timeout 4 strace -f -p $PID -e trace=network,accept4,read,write -o $TMP/strace.out & sleep 1.5; curl -sf --max-time 3 http://\$(kubectl -n $NS get pod web -o jsonpath={.status.podIP}):8080/x >/dev/null; wait; grep -q accept4 $TMP/strace.out"

if [ "${KEEP:-0}" != 1 ]; then kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1; fi
echo "ok=$ok bad=$bad"
exit "$bad"
