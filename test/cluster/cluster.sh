#!/usr/bin/env bash
# cluster.sh — kdiag's local single-node Kubernetes test cluster (needs root; no Docker, no registry).
#
# etcd (embedded) + kube-apiserver + kube-controller-manager + kube-scheduler + kubelet, built from
# k8s.io/kubernetes (version pinned in ./go.mod) with the Go toolchain, plus Debian's containerd,
# runc and CNI plugins. Images are built locally (cmd/mkimage) and imported; nothing is ever pulled.
#
#   cluster.sh deps      apt-get install containerd runc CNI plugins busybox-static ... (no-op if present)
#   cluster.sh build     go build all binaries into $KDIAG_CLUSTER_CACHE/bin-<k8s version>-<source hash>
#                        (skipped when that directory is complete; cold build 12-30 min on 2 cores)
#   cluster.sh images    build the standard images (and import them if containerd is running):
#                          registry.k8s.io/pause:3.10  sandbox image
#                          busybox-local:v1            Debian busybox-static, applets as /bin/sh, ps, ls, cat...
#                          busybox:1.36.1              the same, under the reference of kdiag's default debug
#                                                      image (attach_ephemeral), so the defaults work here
#                          httpserver-local:v1         HTTP server on :8080 (/ and /healthz) + busybox
#   cluster.sh up        start everything and wait for node Ready (no-op if already up and healthy)
#   cluster.sh down      stop everything; remove processes, mounts, netns, bridges, iptables chains, state
#   cluster.sh status    show component/node health (exit 0 only if healthy)
#   cluster.sh env       print shell exports: eval "$(test/cluster/cluster.sh env)"
#   cluster.sh env --json   the same as a JSON object (used by test/harness)
#   cluster.sh all       deps build images up
#   cluster.sh is-built  exit 0 if the binaries for the current sources are already built
#   cluster.sh node2 up|down|status|env
#                        a second node, kdiag-node2, on this host (node2.sh: its own containerd
#                        and kubelet, pods under cgroup /node2, tainted kdiag.io/node2=true:NoSchedule);
#                        `all` starts it too with KDIAG_CLUSTER_NODES=2, `down` removes it
#
#   cluster.sh import-tar FILE.tar
#       Import an image tarball (docker save / OCI, e.g. `make image`'s dist/kdiag-image.tar) into the
#       running cluster's nodes under the reference it names (kept in the state, for node 2's up).
#
#   cluster.sh image [--shell] NAME:TAG BINARY [ENTRYPOINT...]
#       Build a one-binary image from a statically linked BINARY (placed at /<basename>) and import
#       it into the running cluster. ENTRYPOINT defaults to /<basename>. --shell also adds busybox
#       (sh, ps, ls, ...). The tag must not be "latest" (that would make the kubelet try to pull).
#       Example: CGO_ENABLED=0 go build -o /tmp/kdiag ./cmd/kdiag &&
#                test/cluster/cluster.sh image kdiag-local:v1 /tmp/kdiag
#       Such images live in the cluster state: re-import them after down/up.
#
# Node name: kdiag-node (label kubernetes.io/hostname=kdiag-node), node IP 10.255.255.1 on the
# address-only bridge k8snode0. Pods: 10.88.0.0/16 on bridge cni0. Services: 10.96.0.0/16 (no
# kube-proxy, no CoreDNS). apiserver https://127.0.0.1:6443; etcd 127.0.0.1:2379.
#
# kubectl: the build includes kubectl of the server's version ($KDIAG_CLUSTER_BIN/kubectl, first in
# PATH after `eval "$(cluster.sh env)"`); Debian 12 only ships kubectl 1.20 (kubernetes-client).
#
# Environment:
#   KDIAG_CLUSTER_CACHE  binaries, image tarballs, GOCACHE, lock (default /var/cache/kdiag-cluster)
#   KDIAG_CLUSTER_STATE  runtime state: pki, kubeconfigs, logs/, pids/, containerd, kubelet
#                        (default /tmp/kdc; keep it short: the containerd socket lives below it)
#   KDIAG_CLUSTER_LOCKED=1  skip taking $KDIAG_CLUSTER_CACHE/cluster.lock (the caller holds it), e.g.
#                        flock -o /var/cache/kdiag-cluster/cluster.lock env KDIAG_CLUSTER_LOCKED=1 sh -c '...'
#
# Host quirks handled on purpose (each was hit on the 2-core Debian 12 VMs this runs on): no
# CAP_SYS_RESOURCE -> containerd restrict_oom_score_adj + kubelet oomScoreAdj 0; cgroup v1 hybrid ->
# failCgroupV1 false, cgroupfs driver, runc (crun fails); kubelet refuses a loopback node IP and there
# is no dummy driver -> node IP on an address-only bridge; ip_forward=1; version ldflags (else kubectl
# rejects the server version); CGO_ENABLED=0 always (mixing invalidates the build cache).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KDIAG_CLUSTER_CACHE:-/var/cache/kdiag-cluster}
STATE=${KDIAG_CLUSTER_STATE:-/tmp/kdc}
STATE=${STATE%/}
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$HERE/go.mod")   # e.g. v1.34.4
CRICTL_VERSION=v1.37.0
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl mkimage pause httpserver crictl)
NODE_NAME=kdiag-node
NODE_LINK=k8snode0          # address-only bridge holding the node IP (the kernel has no dummy driver)
NODE_IP=10.255.255.1
POD_CIDR=10.88.0.0/16
SVC_CIDR=10.96.0.0/16
PAUSE_IMAGE=registry.k8s.io/pause:3.10
PKI=$STATE/pki
LOGS=$STATE/logs
PIDS=$STATE/pids
CTRD_SOCK=$STATE/containerd/containerd.sock
KUBECONFIG_FILE=$STATE/admin.kubeconfig
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)   # start order
export GOCACHE=$CACHE/gocache CGO_ENABLED=0

log() { printf '%s [kdiag-cluster] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# src_hash: short hash of everything that determines the built binaries.
src_hash() {
  (
    cd "$HERE"
    echo "$K8S_VERSION $CRICTL_VERSION $(ldflags)"
    cat go.mod go.sum
    find cmd -type f | LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -c1-12
}

# ldflags: strip symbols and stamp the real version (without it kubectl rejects the server version).
ldflags() {
  local x="-s -w" p minor
  minor=$(cut -d. -f2 <<<"$K8S_VERSION")
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    x+=" -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  echo "$x"
}

[ -n "$K8S_VERSION" ] || die "cannot read the k8s.io/kubernetes version from $HERE/go.mod"
(( ${#CTRD_SOCK} < 100 )) || die "containerd socket path too long (${#CTRD_SOCK} chars, limit 107): shorten KDIAG_CLUSTER_STATE"
BIN_WANT=$CACHE/bin-$K8S_VERSION-$(src_hash)
# running_bin: the binaries of the cluster in $STATE (it keeps using what it was started with).
running_bin() {
  if [ -f "$STATE/bindir" ] && [ -d "$(cat "$STATE/bindir")" ]; then cat "$STATE/bindir"; else echo "$BIN_WANT"; fi
}
BIN=$(running_bin)

# lock: serialize mutating commands across processes (parallel `go test` packages call `all`).
lock() {
  [ -n "${KDIAG_CLUSTER_LOCKED:-}" ] && return 0
  mkdir -p "$CACHE"
  exec 9>>"$CACHE/cluster.lock"
  if ! flock -n 9; then
    log "another cluster.sh holds $CACHE/cluster.lock; waiting (up to 60 min)"
    flock -w 3600 9 || die "timed out waiting for $CACHE/cluster.lock"
  fi
  KDIAG_CLUSTER_LOCKED=1
}

# wait_for DESC TIMEOUT_S CMD...: poll CMD every 0.5 s until it succeeds.
wait_for() {
  local desc=$1 t=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    (( SECONDS - start > t )) && die "timeout after ${t}s waiting for $desc (logs: $LOGS)"
    sleep 0.5
  done
  log "$desc ready after $((SECONDS - start))s"
}

# with_progress DESC CMD...: run CMD, logging a "still ..." line every 30 s so CI logs show life.
with_progress() {
  local desc=$1; shift
  local t0=$SECONDS last=$SECONDS pid rc=0
  "$@" &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 30 )); then
      last=$SECONDS
      log "still $desc ... $(( (SECONDS - t0) / 60 ))m$(( (SECONDS - t0) % 60 ))s elapsed"
    fi
  done
  wait "$pid" || rc=$?
  trap - INT TERM
  log "$desc: $( ((rc == 0)) && echo done || echo "FAILED (exit $rc)") after $((SECONDS - t0))s"
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# deps

DEP_CMDS=(containerd ctr runc busybox strace iptables conntrack socat ip nsenter flock openssl curl jq bc)
DEP_FILES=(/usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap /usr/lib/cni/loopback
  /etc/ssl/certs/ca-certificates.crt)

# deps_present: true when every needed program is installed (and busybox is the static one).
deps_present() {
  local c f
  for c in "${DEP_CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || return 1; done
  for f in "${DEP_FILES[@]}"; do [ -e "$f" ] || return 1; done
  [ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" = installed ] || return 1
}

# cmd_deps: install the Debian packages the cluster needs; skips apt entirely when all are present.
cmd_deps() {
  if deps_present; then log "deps: all present"; return 0; fi
  log "deps: apt-get install"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends containerd runc containernetworking-plugins \
    busybox-static strace iptables conntrack socat iproute2 util-linux openssl curl ca-certificates jq bc
  deps_present || die "deps still missing after apt-get install"
}

# ---------------------------------------------------------------------------------------------
# build

# bin_complete DIR: true if DIR holds every binary.
bin_complete() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$1/$b" ] || return 1; done
}

# cmd_build: build into $BIN_WANT unless it is complete already. A new directory is seeded with the
# newest previous build, so `go build` relinks only the binaries whose inputs changed.
cmd_build() {
  if bin_complete "$BIN_WANT"; then log "build: up to date ($BIN_WANT)"; return 0; fi
  command -v go >/dev/null || die "go not found in PATH"
  # reproducible, host-native, outside any go.work; the caller's GOFLAGS must not leak in
  export GOWORK=off GOFLAGS=-buildvcs=false
  unset GOOS GOARCH GOEXPERIMENT
  local part=$BIN_WANT.partial prev t0=$SECONDS
  mkdir -p "$part" "$GOCACHE"
  prev=$(ls -1dt "$CACHE"/bin-"$K8S_VERSION"-* 2>/dev/null | grep -v -e '\.partial$' -e "^$BIN_WANT\$" | head -1 || true)
  if [ -n "$prev" ] && [ -z "$(ls -A "$part")" ]; then
    log "build: seeding from $prev"
    cp -p "$prev"/* "$part"/ 2>/dev/null || true
    rm -rf "$part/images" "$part/crictl"
  fi
  log "build: go build $K8S_VERSION components into $part (GOCACHE=$GOCACHE; cold: 12-30 min on 2 cores, longer on a busy machine)"
  local pkgs=() b
  for b in "${BINARIES[@]}"; do [ "$b" = crictl ] || pkgs+=("./cmd/$b"); done
  (cd "$HERE" && with_progress "building Kubernetes binaries" \
    go build -trimpath -buildvcs=false -ldflags="$(ldflags)" -o "$part/" "${pkgs[@]}")

  local crictl_dir=$CACHE/crictl-$CRICTL_VERSION
  if [ ! -x "$crictl_dir/crictl" ]; then
    mkdir -p "$crictl_dir"
    (cd "$CACHE" && GOBIN=$crictl_dir with_progress "building crictl $CRICTL_VERSION" \
      go install -trimpath -ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION")
  fi
  cp -p "$crictl_dir/crictl" "$part/crictl"
  bin_complete "$part" || die "build incomplete in $part"
  rm -rf "$BIN_WANT"
  mv "$part" "$BIN_WANT"
  # keep the two newest builds, drop older ones (never the one a running cluster uses)
  ls -1dt "$CACHE"/bin-v* 2>/dev/null | grep -v '\.partial$' | tail -n +3 | while read -r d; do
    [ "$d" = "$BIN" ] || { log "build: removing old $d"; rm -rf "$d"; }
  done || true
  log "build: done in $((SECONDS - t0))s -> $BIN_WANT"
}

# ---------------------------------------------------------------------------------------------
# images

STD_IMAGES=(pause busybox busybox-pinned httpserver)

# PINNED_BUSYBOX is kdiag's default debug image (builtins/kube DefaultDebugImage); the test cluster has
# Debian's busybox under that reference, so attach_ephemeral's default works without a pull.
PINNED_BUSYBOX=busybox:1.36.1

# build_images DIR: (re)build the standard image tarballs from the binaries in DIR into DIR/images.
build_images() {
  local b=$1 out=$1/images
  mkdir -p "$out"
  "$b/mkimage" -name "$PAUSE_IMAGE" -add "$b/pause:/pause" -o "$out/pause.tar" -- /pause
  "$b/mkimage" -name busybox-local:v1 -busybox /bin/busybox -cmd /bin/sh -o "$out/busybox.tar"
  "$b/mkimage" -name "$PINNED_BUSYBOX" -busybox /bin/busybox -cmd /bin/sh -o "$out/busybox-pinned.tar"
  "$b/mkimage" -name httpserver-local:v1 -busybox /bin/busybox -add "$b/httpserver:/httpserver" \
    -o "$out/httpserver.tar" -- /httpserver
}

# images_fresh DIR: true if all standard tarballs exist and are newer than their inputs.
images_fresh() {
  local i f
  for i in "${STD_IMAGES[@]}"; do
    for f in "$1/mkimage" "$1/pause" "$1/httpserver" /bin/busybox; do
      [ "$1/images/$i.tar" -nt "$f" ] || return 1
    done
  done
}

# ctr_: ctr against our containerd, namespace k8s.io (the CRI namespace).
ctr_() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }

# containerd_up: true if our containerd answers.
containerd_up() { [ -S "$CTRD_SOCK" ] && ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; }

# import_tar FILE: import a docker-save tarball into containerd (k8s.io namespace) and unpack it.
# When the second node is up, the image goes there too.
import_tar() {
  ctr_ images import --no-unpack=false "$1" >/dev/null
  local s2=${NODE2_HOME:-/tmp/kdiag-node2}/run/containerd/containerd.sock
  if [ -S "$s2" ] && ctr --address "$s2" version >/dev/null 2>&1; then
    ctr --address "$s2" -n k8s.io images import --no-unpack=false "$1" >/dev/null || log "WARNING: import into node 2 failed"
  fi
}

# node2 CMD: the second node (node2.sh: own containerd and kubelet on this host, tainted
# kdiag.io/node2=true:NoSchedule so only pods that ask for it run there).
cmd_node2() {
  eval "$(cmd_env)"
  export KUBECONFIG KDIAG_CLUSTER_BIN KDIAG_CLUSTER_STATE
  bash "$HERE/node2.sh" "$@"
}

# import_std_images: import the standard tarballs.
import_std_images() {
  local i
  for i in "${STD_IMAGES[@]}"; do import_tar "$BIN/images/$i.tar"; done
  log "images in containerd: $(ctr_ images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

# cmd_images: build the standard images (if out of date); import them if containerd is running.
cmd_images() {
  bin_complete "$BIN" || die "binaries not built ($BIN); run '$0 build' first"
  if images_fresh "$BIN"; then log "images: tarballs up to date in $BIN/images"; else build_images "$BIN"; fi
  if containerd_up; then import_std_images; else log "images: containerd not running; 'up' imports them"; fi
}

# cmd_image [--shell] NAME:TAG BINARY [ENTRYPOINT...]: one-binary image, imported into the cluster.
cmd_image() {
  local shell=0
  [ "${1:-}" = --shell ] && { shell=1; shift; }
  [ $# -ge 2 ] || die "usage: $0 image [--shell] NAME:TAG BINARY [ENTRYPOINT...]"
  local ref=$1 binary=$2; shift 2
  [ -f "$binary" ] || die "image: $binary: no such file"
  containerd_up || die "image: cluster is not up (containerd at $CTRD_SOCK not answering); run '$0 up' first"
  local base tar
  base=$(basename "$binary")
  mkdir -p "$STATE/images"
  tar=$STATE/images/$(tr '/:@' '___' <<<"$ref").tar
  local args=(-name "$ref" -o "$tar" -add "$binary:/$base")
  (( shell )) && args+=(-busybox /bin/busybox)
  if (( $# )); then args+=(-- "$@"); else args+=(-- "/$base"); fi
  "$BIN/mkimage" "${args[@]}"
  import_tar "$tar"
  log "image: imported $ref"
}

# ---------------------------------------------------------------------------------------------
# up

# start_bg NAME CMD...: start a daemon in its own session; pid in $PIDS, output in $LOGS.
start_bg() {
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!)"
}

# gen_certs: self-made CA and certificates (idempotent).
gen_certs() {
  local adv=$1
  mkdir -p "$PKI"
  [ -f "$PKI/ca.crt" ] && return 0
  (
    cd "$PKI"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -nodes -key ca.key -subj "/CN=kdiag-cluster-ca" -days 3650 -out ca.crt 2>/dev/null
    sign() { # name subject san usage
      local n=$1 subj=$2 san=$3 usage=$4
      openssl genrsa -out "$n.key" 2048 2>/dev/null
      openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr" 2>/dev/null
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
      } >"$n.ext"
      openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$n.ext" -out "$n.crt" 2>/dev/null
      rm -f "$n.csr" "$n.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$adv" serverAuth
    sign admin "/O=system:masters/CN=kubernetes-admin" "" clientAuth
    sign node "/O=system:nodes/CN=system:node:$NODE_NAME" "" clientAuth
    sign kubelet-serving "/CN=$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP" serverAuth
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

# write_kubeconfig FILE USER CERTNAME
write_kubeconfig() {
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kdiag
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$3.crt
    client-key: $PKI/$3.key
contexts:
- name: kdiag
  context: {cluster: kdiag, user: $2, namespace: default}
current-context: kdiag
KC
}

# kctl: the cluster's own kubectl (same version as the server) with the admin kubeconfig.
kctl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# apiserver_ready: true if /readyz answers OK.
apiserver_ready() {
  [ -f "$PKI/admin.crt" ] && curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" https://127.0.0.1:6443/readyz >/dev/null
}

# node_ready: true if the node reports Ready.
node_ready() {
  [ "$(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# pid_alive NAME: true if the component's recorded process is running.
pid_alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

# healthy: every component alive, apiserver ready, containerd answering, node Ready.
healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  apiserver_ready && containerd_up && node_ready
}

# adv_ip: the host's primary IPv4 address (apiserver advertise address).
adv_ip() { ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="src"){print $(i+1); exit}}'; }

# up_control_plane: etcd -> kube-apiserver (/readyz) -> controller-manager + scheduler -> default SA.
up_control_plane() {
  local adv
  adv=$(adv_ip); adv=${adv:-$NODE_IP}
  gen_certs "$adv"
  write_kubeconfig "$KUBECONFIG_FILE" admin admin
  write_kubeconfig "$STATE/node.kubeconfig" "system:node:$NODE_NAME" node

  start_bg etcd "$BIN/etcd" -data-dir "$STATE/etcd"
  wait_for etcd 60 curl -sf http://127.0.0.1:2379/health

  start_bg kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --secure-port=6443 --advertise-address="$adv" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=$SVC_CIDR \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --profiling=false --v=1
  wait_for kube-apiserver/readyz 180 apiserver_ready

  start_bg kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_FILE" --authentication-kubeconfig="$KUBECONFIG_FILE" \
    --authorization-kubeconfig="$KUBECONFIG_FILE" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range=$SVC_CIDR --use-service-account-credentials=false \
    --profiling=false --v=1
  start_bg kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_FILE" --authentication-kubeconfig="$KUBECONFIG_FILE" \
    --authorization-kubeconfig="$KUBECONFIG_FILE" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
  # pods are refused until kube-controller-manager has created the "default" ServiceAccount
  wait_for "default serviceaccount" 120 kctl get serviceaccount default -n default
}

# up_node: node bridge, CNI config, containerd (+ images), kubelet; waits for node Ready.
up_node() {
  mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/kubelet"
  # node IP on an address-only bridge, so the kubelet never listens on eth0
  ip link show "$NODE_LINK" >/dev/null 2>&1 || ip link add "$NODE_LINK" type bridge
  ip addr replace "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK" up
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

  cat >"$STATE/cni/net.d/10-kdiag.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "kdiag",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$STATE/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
CNI
  cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # root here has every capability except CAP_SYS_RESOURCE, so lowering oom_score_adj (pause asks
  # for -998) fails: runc "can't get final child's PID from pipe: EOF". Clamp to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc, not crun: crun fails on this hybrid cgroup v1/v2 layout
        BinaryName = "/usr/sbin/runc"
        Root = "$STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
TOML
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 10\n' "$CTRD_SOCK" "$CTRD_SOCK" >"$STATE/crictl.yaml"
  start_bg containerd containerd --config "$STATE/containerd/config.toml"
  wait_for containerd 60 containerd_up
  import_std_images

  cat >"$STATE/kubelet/config.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs      # PID 1 is not systemd
failCgroupV1: false         # cgroup v1 host: 1.34 only warns when this is false
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
registerNode: true
serializeImagePulls: false
podLogsDir: $STATE/kubelet/pod-logs
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
protectKernelDefaults: false
oomScoreAdj: 0              # no CAP_SYS_RESOURCE: the default -999 cannot be set
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusReportFrequency: 10s
KCFG
  start_bg kubelet "$BIN/kubelet" --config="$STATE/kubelet/config.yaml" --kubeconfig="$STATE/node.kubeconfig" \
    --root-dir="$STATE/kubelet/root" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  wait_for "node $NODE_NAME Ready" 180 node_ready
}

# cmd_up: start the cluster (building and making images first if needed); no-op when healthy.
cmd_up() {
  local t0=$SECONDS
  if [ -e "$STATE" ]; then
    if healthy; then
      [ "$BIN" = "$BIN_WANT" ] || log "note: cluster runs binaries from $BIN; sources changed since (run down + up to switch)"
      log "up: already up and healthy"
      return 0
    fi
    log "up: $STATE exists but the cluster is not healthy; tearing it down first"
    cmd_down || log "up: continuing despite teardown warnings"
  fi
  deps_present || cmd_deps
  cmd_build
  BIN=$BIN_WANT
  images_fresh "$BIN" || build_images "$BIN"
  rm -rf "$STATE"
  mkdir -p "$STATE" "$LOGS" "$PIDS"
  echo "$BIN" >"$STATE/bindir"
  up_control_plane
  log "control plane ready after $((SECONDS - t0))s"
  up_node
  log "cluster up after $((SECONDS - t0))s: node $NODE_NAME, KUBECONFIG=$KUBECONFIG_FILE"
}

# ---------------------------------------------------------------------------------------------
# down

# stop_pid NAME: TERM the component, KILL it after 10 s.
stop_pid() {
  local f=$PIDS/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# our_procs: pids of this cluster's processes: components started from the cache or containerd
# with $STATE in their arguments, our containerd shims, and everything in the kubepods cgroups.
our_procs() {
  local p cmd exe
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue   # (processes come and go)
    [ -n "$cmd" ] || continue   # kernel threads
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || exe=
    if [[ "$cmd" == *"$STATE/"* && ( "$exe" == "$CACHE"/* || "$exe" == */containerd* ) ]] ||
      grep -q ':/kubepods' "/proc/$p/cgroup" 2>/dev/null; then
      echo "$p"
    fi
  done
}

# state_mounts: mount points below $STATE, deepest first.
state_mounts() { awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r; }

# cmd_down: stop everything and remove every trace of the cluster (idempotent). Teardown is
# best effort (a failing step must not stop the rest); verify_down reports what is left.
cmd_down() {
  local t0=$SECONDS
  if [ -e "${NODE2_HOME:-/tmp/kdiag-node2}/run" ]; then cmd_node2 down || true; fi
  teardown || true
  verify_down
  log "down after $((SECONDS - t0))s"
}

# teardown: the steps of cmd_down (called in a `||` context, so set -e does not apply).
teardown() {
  local netns=() p
  local cri=("$BIN/crictl" --runtime-endpoint "unix://$CTRD_SOCK" --timeout 30s)
  if containerd_up && [ -x "$BIN/crictl" ]; then
    # remember the pods' network namespaces, to remove any that survive the sandbox removal
    for p in $("${cri[@]}" pods -q 2>/dev/null); do
      netns+=($("${cri[@]}" inspectp -o json "$p" 2>/dev/null |
        jq -r '.info.runtimeSpec.linux.namespaces[]? | select(.type == "network") | .path // empty' || true))
    done
  fi
  stop_pid kubelet
  if containerd_up; then
    # stop and remove all pod sandboxes: containers, shims, CNI (IP, veth, iptables) and netns go away
    if [ -x "$BIN/crictl" ]; then "${cri[@]}" rmp -fa >/dev/null 2>&1 || true; fi
    for p in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$p" >/dev/null 2>&1 || true; done
  fi
  stop_pid containerd
  for p in $(our_procs); do kill -KILL "$p" 2>/dev/null || true; done
  stop_pid kube-scheduler
  stop_pid kube-controller-manager
  stop_pid kube-apiserver
  stop_pid etcd
  sleep 0.2
  for p in $(state_mounts); do umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true; done
  for p in "${netns[@]}"; do
    [ -e "$p" ] || continue
    umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true
    rm -f "$p"
  done
  # kubepods cgroups (cgroupfs driver)
  for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$p" ] && find "$p" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  cleanup_iptables
  ip link del cni0 2>/dev/null || true
  ip link del "$NODE_LINK" 2>/dev/null || true
  # kubelet's /var/log/containers symlinks into our pod log dir
  find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  # libcni result cache entries of our network ("kdiag")
  rm -f /var/lib/cni/results/kdiag-* 2>/dev/null || true
  remove_unused_cni_netns
  rm -rf "$STATE"
}

# remove_unused_cni_netns: drop pod network namespaces (/run/netns/cni-*) no process uses any more
# (left behind if a sandbox could not be removed through containerd).
remove_unused_cni_netns() {
  local n q used
  for n in /run/netns/cni-*; do
    [ -e "$n" ] || continue
    used=0
    for q in /proc/[0-9]*/ns/net; do
      [ "$q" -ef "$n" ] && { used=1; break; }
    done
    (( used )) && continue
    umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null || true
    rm -f "$n"
  done
}

# cleanup_iptables: remove the chains the kubelet and the CNI portmap plugin created.
cleanup_iptables() {
  local ipt tbl c
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -F KUBE-FIREWALL 2>/dev/null || true
    $ipt -X KUBE-FIREWALL 2>/dev/null || true
    for tbl in filter nat mangle; do
      $ipt -t $tbl -X KUBE-KUBELET-CANARY 2>/dev/null || true
      $ipt -t $tbl -X KUBE-IPTABLES-HINT 2>/dev/null || true
    done
    # CNI: portmap's CNI-HOSTPORT-* chains, and per-pod masquerade chains of our network that a
    # failed CNI DEL left behind; first the jumps to them from the built-in nat chains
    local chains
    chains=$($ipt -t nat -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^CNI-HOSTPORT-/ {print $2}
      $1 == "-A" && $2 ~ /^CNI-/ && /name: \\"kdiag\\"/ {print $2}' | sort -u)
    [ -n "$chains" ] || continue
    for c in PREROUTING OUTPUT POSTROUTING; do
      # delete by rule number, highest first, every rule jumping to one of our chains
      $ipt -t nat -L $c -n --line-numbers 2>/dev/null |
        awk -v ch=" $(echo $chains) " 'NR > 2 && index(ch, " " $2 " ") {print $1}' | sort -rn |
        while read -r num; do $ipt -t nat -D $c "$num" 2>/dev/null || true; done
    done
    for c in $chains; do
      $ipt -t nat -F "$c" 2>/dev/null || true
      $ipt -t nat -X "$c" 2>/dev/null || true
    done
  done
}

# verify_down: warn about anything the teardown left behind.
verify_down() {
  local left=()
  [ -n "$(our_procs)" ] && left+=("processes: $(our_procs | tr '\n' ' ')")
  [ -n "$(state_mounts)" ] && left+=("mounts: $(state_mounts | tr '\n' ' ')")
  ip link show cni0 >/dev/null 2>&1 && left+=("link cni0")
  ip link show "$NODE_LINK" >/dev/null 2>&1 && left+=("link $NODE_LINK")
  [ -e "$STATE" ] && left+=("dir $STATE")
  compgen -G '/run/netns/cni-*' >/dev/null && left+=("netns: $(echo /run/netns/cni-*)")
  [[ "$(iptables -t nat -S 2>/dev/null)" == *'name: \"kdiag\"'* ]] && left+=("iptables nat rules of network kdiag")
  if (( ${#left[@]} )); then log "WARNING: down left behind: ${left[*]}"; return 1; fi
}

# ---------------------------------------------------------------------------------------------
# status / env

# cmd_status: human-readable health report; exit 0 only if healthy.
cmd_status() {
  local c
  echo "state: $STATE   binaries: $BIN"
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then echo "  $c: running (pid $(cat "$PIDS/$c.pid"))"; else echo "  $c: not running"; fi
  done
  if apiserver_ready; then echo "  apiserver /readyz: ok"; else echo "  apiserver /readyz: not ready"; fi
  if apiserver_ready; then kctl get nodes -o wide 2>&1 | sed 's/^/  /'; fi
  if containerd_up; then echo "  images: $(ctr_ images ls -q | grep -v '^sha256:' | tr '\n' ' ')"; fi
  if healthy; then echo "healthy"; else echo "NOT healthy (logs: $LOGS)"; return 1; fi
}

# json_str S: S as a JSON string.
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# cmd_env [--json]: shell exports (or JSON) describing how to reach the cluster.
cmd_env() {
  if [ "${1:-}" = --json ]; then
    printf '{"kubeconfig":%s,"runtimeEndpoint":%s,"nodeName":%s,"binDir":%s,"stateDir":%s,"crictlConfig":%s}\n' \
      "$(json_str "$KUBECONFIG_FILE")" "$(json_str "unix://$CTRD_SOCK")" "$(json_str "$NODE_NAME")" \
      "$(json_str "$BIN")" "$(json_str "$STATE")" "$(json_str "$STATE/crictl.yaml")"
    return 0
  fi
  cat <<EOF
export KUBECONFIG=$KUBECONFIG_FILE
export CONTAINER_RUNTIME_ENDPOINT=unix://$CTRD_SOCK
export IMAGE_SERVICE_ENDPOINT=unix://$CTRD_SOCK
export CRI_CONFIG_FILE=$STATE/crictl.yaml
export KDIAG_CLUSTER_BIN=$BIN
export KDIAG_CLUSTER_STATE=$STATE
export KDIAG_CLUSTER_NODE=$NODE_NAME
export PATH="$BIN:\$PATH"
EOF
}

case "${1:-}" in
  deps) lock; cmd_deps ;;
  build) lock; cmd_build ;;
  images) lock; cmd_images ;;
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  all) lock; cmd_deps; cmd_build; BIN=$(running_bin); cmd_images; cmd_up
    if [ "${KDIAG_CLUSTER_NODES:-1}" -ge 2 ]; then cmd_node2 up; fi ;;
  node2) shift; case "${1:-}" in up | down) lock ;; esac; cmd_node2 "$@" ;;
  image | import-image) shift; lock; cmd_image "$@" ;;
  import-tar) shift; [ $# -eq 1 ] && [ -f "$1" ] || die "usage: $0 import-tar FILE.tar"
    containerd_up || die "import-tar: cluster is not up; run '$0 up' first"
    lock; import_tar "$1"; mkdir -p "$STATE/images"; cp "$1" "$STATE/images/imported-$(basename "$1")"
    log "import-tar: imported $1 (node 2 imports it when it comes up)" ;;
  status) cmd_status ;;
  env) shift; cmd_env "$@" ;;
  is-built) bin_complete "$BIN_WANT" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
