#!/usr/bin/env bash
# pipeline.sh — a real alert pipeline on the local cluster: Prometheus scrapes the kubelet's
# probe metrics, a readiness rule fires, Alertmanager routes the alert to `kdiag serve`, which
# diagnoses the pod under dry-run and, when the alert persists, fixes it on a second route.
#
#   test/alerts/pipeline.sh build [prometheus|alertmanager]  build (or reuse) them in the cache
#   test/alerts/pipeline.sh up       build, write the configs into the state dir, start
#                                    prometheus, alertmanager and kdiag serve; waits until ready
#   test/alerts/pipeline.sh down     stop them (the state dir, with logs and runs, stays)
#   test/alerts/pipeline.sh status   which are running, the active alerts
#   test/alerts/pipeline.sh env      shell exports: addresses, token file, state dir
#
# Environment (defaults in brackets):
#   KDIAG_ALERTS_STATE       configs, data, logs, pids, kdiag serve's store [/tmp/kdiag-alerts]
#   KDIAG_ALERTS_CACHE       binary cache, one dir per component and version [/var/cache/kdiag-alerts]
#   KDIAG_ALERTS_NAMESPACES  RE2 of the namespaces the rules and routes cover [alerts-.*]
#                            (the cluster is shared: never the whole cluster)
#   KDIAG_ALERTS_PROMETHEUS  Prometheus listen address [127.0.0.1:19090]
#   KDIAG_ALERTS_ALERTMANAGER  Alertmanager listen address [127.0.0.1:19093]
#   KDIAG_ALERTS_SERVE       kdiag serve listen address [127.0.0.1:18080]
#   KDIAG_ALERTS_FIX_AFTER   `for:` of the remediation alert KdiagPodNotReadyPersistent [30s]
#   KDIAG_ALERTS_REPEAT      Alertmanager repeat_interval [10s: short, to show repeats start no run]
#   KDIAG                    the kdiag binary [bin/kdiag]
#
# The cluster itself comes from test/cluster/cluster.sh (its admin client certificate is what
# Prometheus scrapes the kubelet with); this script never starts or stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROMETHEUS_VERSION=v0.316.0 # github.com/prometheus/prometheus (Prometheus 3.x module versioning)
ALERTMANAGER_VERSION=v0.35.0

STATE=${KDIAG_ALERTS_STATE:-/tmp/kdiag-alerts}
CACHE=${KDIAG_ALERTS_CACHE:-/var/cache/kdiag-alerts}
NAMESPACES=${KDIAG_ALERTS_NAMESPACES:-alerts-.*}
PROM_ADDR=${KDIAG_ALERTS_PROMETHEUS:-127.0.0.1:19090}
AM_ADDR=${KDIAG_ALERTS_ALERTMANAGER:-127.0.0.1:19093}
SERVE_ADDR=${KDIAG_ALERTS_SERVE:-127.0.0.1:18080}
FIX_AFTER=${KDIAG_ALERTS_FIX_AFTER:-30s}
REPEAT=${KDIAG_ALERTS_REPEAT:-10s}
KDIAG=${KDIAG:-$ROOT/bin/kdiag}
PROMETHEUS=$CACHE/prometheus-$PROMETHEUS_VERSION/prometheus
ALERTMANAGER=$CACHE/alertmanager-$ALERTMANAGER_VERSION/alertmanager
COMPONENTS=(prometheus alertmanager serve)
export PATH="$PATH:/usr/local/go/bin"

log() { printf '[alerts %s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# build_locked COMPONENT BIN FUNC: runs FUNC TMPDIR under the cache lock unless BIN exists,
# then moves TMPDIR/COMPONENT to BIN (so a half-built binary is never used).
build_locked() {
  local comp=$1 bin=$2 fn=$3
  [ -x "$bin" ] && return 0
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.lock"
  flock 8
  if [ ! -x "$bin" ]; then
    local tmp start=$SECONDS
    tmp=$(mktemp -d "$CACHE/.build-$comp.XXXXXX")
    log "building $comp (first use; cached in $(dirname "$bin"))"
    if ! "$fn" "$tmp" >"$tmp/build.log" 2>&1; then
      tail -40 "$tmp/build.log" >&2
      rm -rf "$tmp"
      die "building $comp failed"
    fi
    mkdir -p "$(dirname "$bin")"
    mv "$tmp/$comp" "$bin"
    rm -rf "$tmp"
    log "built $comp in $((SECONDS - start))s"
  fi
  flock -u 8
  exec 8>&-
}

# module_dir MODULE@VERSION: downloads the module (Go module proxy) and prints its directory.
module_dir() {
  (cd "$CACHE" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# version_flags DIR: -ldflags giving the binary built from module DIR its --version (DIR/VERSION).
version_flags() { echo "-X github.com/prometheus/common/version.Version=$(cat "$1/VERSION")"; }

build_prometheus() {
  local dir
  dir=$(module_dir "github.com/prometheus/prometheus@$PROMETHEUS_VERSION")
  [ -d "$dir" ] || return 1
  GOBIN=$1 CGO_ENABLED=0 go install -ldflags "$(version_flags "$dir")" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
}

# Alertmanager's module lacks its UI bundle (ui/app/dist, embedded with go:embed), so `go install`
# fails; build a copy of the module with a placeholder page instead (the API is all we use).
build_alertmanager() {
  local dir src
  dir=$(module_dir "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION")
  [ -d "$dir" ] || return 1
  src=$1/src
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  for ui in elm mantine; do
    mkdir -p "$src/ui/app/dist/$ui"
    echo '<!doctype html><title>Alertmanager</title><p>UI not built; see /api/v2/' >"$src/ui/app/dist/$ui/index.html"
  done
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags "$(version_flags "$dir")" \
    -o "$1/alertmanager" ./cmd/alertmanager)
  rm -rf "$src"
}

cmd_build() {
  case "${1:-all}" in all | alertmanager) build_locked alertmanager "$ALERTMANAGER" build_alertmanager ;; esac
  case "${1:-all}" in all | prometheus) build_locked prometheus "$PROMETHEUS" build_prometheus ;; esac
}

# write_configs: the four configs, from the environment above. The token is made once per state dir.
write_configs() {
  eval "$("$ROOT/test/cluster/cluster.sh" env)"
  local pki=$KDIAG_CLUSTER_STATE/pki
  mkdir -p "$STATE"/{prometheus,alertmanager,serve,logs,pids}
  chmod 700 "$STATE"
  [ -s "$STATE/token" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/token")

  # Prometheus: the kubelets, found through the API server, scraped on /metrics/probes over
  # https with a client certificate the kubelet accepts (the cluster's admin certificate here;
  # give a real Prometheus an identity allowed nodes/metrics). Only readiness probe results
  # of the covered namespaces are kept.
  cat >"$STATE/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['$AM_ADDR']}]
scrape_configs:
  - job_name: kubelet-probes
    scheme: https
    metrics_path: /metrics/probes
    kubernetes_sd_configs:
      - role: node
        kubeconfig_file: $KUBECONFIG
    tls_config:
      ca_file: $pki/ca.crt
      cert_file: $pki/admin.crt
      key_file: $pki/admin.key
    metric_relabel_configs:
      - source_labels: [__name__, probe_type, namespace]
        regex: 'prober_probe_total;Readiness;($NAMESPACES)'
        action: keep
  - job_name: kdiag
    static_configs: [{targets: ['$SERVE_ADDR']}]
EOF

  # The rules: a pod whose readiness probes only fail (none succeeded in the window) is not
  # ready. KdiagPodNotReady starts a diagnosis at once; the same condition lasting $FIX_AFTER
  # raises KdiagPodNotReadyPersistent, labelled for the automatic fix.
  local sel="probe_type=\"Readiness\", namespace=~\"$NAMESPACES\"" expr
  expr="sum by (namespace, pod) (increase(prober_probe_total{$sel, result=\"failed\"}[10s])) > 0
            unless
          sum by (namespace, pod) (increase(prober_probe_total{$sel, result=\"successful\"}[10s])) > 0"
  cat >"$STATE/prometheus/rules.yml" <<EOF
groups:
  - name: kdiag-readiness
    interval: 1s
    rules:
      - alert: KdiagPodNotReady
        expr: |
          $expr
        for: 3s
        labels: {severity: warning}
        annotations:
          summary: 'pod {{ \$labels.namespace }}/{{ \$labels.pod }} fails its readiness probe'
          description: 'every readiness probe of the pod failed in the last 10s; kdiag diagnoses it (dry-run)'
      - alert: KdiagPodNotReadyPersistent
        expr: |
          $expr
        for: $FIX_AFTER
        labels: {severity: critical, remediation: readiness-probe-failing}
        annotations:
          summary: 'pod {{ \$labels.namespace }}/{{ \$labels.pod }} not ready for $FIX_AFTER'
          description: 'kdiag applies the readiness-probe-failing fix, verified or rolled back'
      - alert: KdiagDeploymentNotReady
        expr: |
          count by (namespace, deployment) (label_replace(($expr), "deployment", "\$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]{5}")) >= 2
        for: 3s
        labels: {severity: warning}
        annotations:
          summary: 'deployment {{ \$labels.namespace }}/{{ \$labels.deployment }}: {{ \$value }} pods fail their readiness probe'
          description: 'a workload-level alert naming no pod; kdiag runs the diagnosis on every replica (dry-run)'
EOF

  # Alertmanager: one group per alert and namespace, so that a notification holds every pod of
  # the namespace the alert fires for; the kdiag receiver gets firing and resolved notifications
  # and every repeat — kdiag serve starts one run per alert and ignores the rest.
  cat >"$STATE/alertmanager/alertmanager.yml" <<EOF
route:
  receiver: 'null'
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: $REPEAT
  routes:
    - receiver: kdiag
      matchers: ['alertname=~"KdiagPodNotReady|KdiagPodNotReadyPersistent|KdiagDeploymentNotReady"', 'namespace=~"$NAMESPACES"']
receivers:
  - name: 'null'
  - name: kdiag
    webhook_configs:
      - url: http://$SERVE_ADDR/alerts
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: $STATE/token
EOF

  # kdiag serve: the diagnosis route under dry-run for the first alert; the fix route only
  # for the persistent alert labelled remediation=readiness-probe-failing, allowed to patch
  # the ConfigMap and restart the pod (the runbook verifies the fix or rolls it back).
  # One run at a time, so the fix never races the diagnosis of the same pod.
  cat >"$STATE/serve/playbooks.yaml" <<EOF
listen: $SERVE_ADDR
store: store
auth:
  token_file: ../token
concurrency: 1
dedupe_window: 1h
executor: local
routes:
  - name: pod-not-ready-diagnose
    match: {alertname: KdiagPodNotReady}
    match_re: {namespace: "$NAMESPACES"}
    runbook: readiness-probe-failing
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
      force: "true"
    mutations: dry-run
    timeout: 5m
  - name: pod-not-ready-fix
    match: {alertname: KdiagPodNotReadyPersistent, remediation: readiness-probe-failing}
    match_re: {namespace: "$NAMESPACES"}
    runbook: readiness-probe-failing
    params:
      pod: "{{ .Labels.pod }}"
      namespace: "{{ .Labels.namespace }}"
      force: "true"
      ephemeral: "false"
    mutations: allow
    allow_builtins: [patch_configmap, restart]
    timeout: 5m
  - name: deployment-not-ready
    match: {alertname: KdiagDeploymentNotReady}
    match_re: {namespace: "$NAMESPACES"}
    runbook: readiness-probe-failing
    params:
      namespace: "{{ .Labels.namespace }}"
      ephemeral: "false"
      fix: "false"
    mutations: dry-run
    timeout: 5m
    fanout:
      owner: {kind: Deployment, name: "{{ .Labels.deployment }}"}
      max_pods: 5
EOF
}

pid_of() { local f=$STATE/pids/$1.pid; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

# start NAME CMD...: starts CMD in its own session, logging to logs/NAME.log.
start() {
  local name=$1
  shift
  if pid_of "$name" >/dev/null; then log "$name already running"; return 0; fi
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

# wait_http NAME URL: waits until URL answers 200 (30s), or fails showing the log.
wait_http() {
  local i
  for i in $(seq 1 150); do
    curl -sf --max-time 2 -o /dev/null "$2" && return 0
    pid_of "$1" >/dev/null || break
    sleep 0.2
  done
  tail -30 "$STATE/logs/$1.log" >&2
  die "$1 did not become ready at $2"
}

cmd_up() {
  [ -x "$KDIAG" ] || die "no kdiag binary at $KDIAG (make build, or set KDIAG)"
  cmd_build
  write_configs
  trap 'log "up failed; stopping what started"; cmd_down' EXIT
  start prometheus "$PROMETHEUS" --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" --web.listen-address="$PROM_ADDR" \
    --rules.alert.resend-delay=2s --log.level=info
  start alertmanager "$ALERTMANAGER" --config.file="$STATE/alertmanager/alertmanager.yml" \
    --storage.path="$STATE/alertmanager/data" --web.listen-address="$AM_ADDR" \
    --cluster.listen-address= --log.level=info
  start serve "$KDIAG" serve --config "$STATE/serve/playbooks.yaml" \
    --kubeconfig "$KUBECONFIG" --runtime-endpoint "$CONTAINER_RUNTIME_ENDPOINT"
  wait_http prometheus "http://$PROM_ADDR/-/ready"
  wait_http alertmanager "http://$AM_ADDR/-/ready"
  wait_http serve "http://$SERVE_ADDR/healthz"
  trap - EXIT
  log "up: prometheus http://$PROM_ADDR, alertmanager http://$AM_ADDR, kdiag serve http://$SERVE_ADDR (namespaces $NAMESPACES; state $STATE)"
}

# stop NAME: SIGTERM, then SIGKILL after 20s (kdiag serve ends running runs as cancelled).
stop() {
  local pid i
  pid=$(pid_of "$1") || { rm -f "$STATE/pids/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && { log "$1 ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$STATE/pids/$1.pid"
}

cmd_down() {
  local c
  for c in serve alertmanager prometheus; do stop "$c"; done
  log "down (state and logs kept in $STATE)"
}

cmd_status() {
  local c pid
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then echo "$c: running (pid $pid)"; else echo "$c: stopped"; fi
  done
  for c in prometheus alertmanager; do
    local bin=$CACHE/$c-$([ $c = prometheus ] && echo $PROMETHEUS_VERSION || echo $ALERTMANAGER_VERSION)/$c
    [ -x "$bin" ] && echo "$c binary: $bin" || echo "$c binary: not built"
  done
  if pid_of prometheus >/dev/null; then
    echo "alerts: $(curl -sf --max-time 5 "http://$PROM_ADDR/api/v1/alerts" || echo unavailable)"
  fi
}

cmd_env() {
  cat <<EOF
export KDIAG_ALERTS_STATE=$STATE
export KDIAG_ALERTS_PROMETHEUS_URL=http://$PROM_ADDR
export KDIAG_ALERTS_ALERTMANAGER_URL=http://$AM_ADDR
export KDIAG_ALERTS_SERVE_URL=http://$SERVE_ADDR
export KDIAG_ALERTS_TOKEN_FILE=$STATE/token
EOF
}

case "${1:-}" in
  build) cmd_build "${2:-all}" ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
