#!/usr/bin/env bash
# node-probe.sh — http_probe into a container's network namespace versus
# `nsenter -t PID -n curl`, on the same machine in the same run.
#
# It starts the seed incident's broken app in fresh namespaces (unshare,
# loopback up, a private tmpfs at /opt holding the offending file), times N
# plain-bash iterations of nsenter+curl against its /readyz, then runs the
# Go benchmark BenchmarkHTTPProbe (which starts its own, identical target)
# for kdiag's side, and prints both per-request times and the ratio.
#
# Needs root, unshare, nsenter, curl, ip and go. Usage: bench/node-probe.sh [N]
set -euo pipefail

N=${1:-200}
cd "$(dirname "$0")/.."
for tool in unshare nsenter curl ip go; do
	command -v "$tool" >/dev/null || { echo "node-probe: $tool is not installed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "node-probe: needs root (namespaces)" >&2; exit 1; }

work=$(mktemp -d)
target=
cleanup() {
	[ -n "$target" ] && kill -KILL "$target" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/app" ./examples/broken-pod/app

# The target: PID 1 of new net/pid/uts/ipc/mnt namespaces, as nodetest makes it.
unshare --net --pid --uts --ipc --mount --fork sh -c '
	mount --make-rprivate /
	mount -t tmpfs tmpfs /opt
	mkdir -p /opt/config
	echo "[default]" > /opt/config/config.toml
	: > /opt/config/additional_file
	ip link set lo up
	exec "$0" --addr :3000' "$work/app" >"$work/app.log" 2>&1 &
shell=$!
for _ in $(seq 100); do
	target=$(pgrep -P "$shell" || true)
	[ -n "$target" ] && grep -q ' 0BB8 \|:0BB8 .* 0A ' "/proc/$target/net/tcp6" "/proc/$target/net/tcp" 2>/dev/null && break
	sleep 0.05
done
[ -n "$target" ] || { echo "node-probe: the target did not start:" >&2; cat "$work/app.log" >&2; exit 1; }

url=http://127.0.0.1:3000/readyz
code=$(nsenter -t "$target" -n curl -s -o /dev/null -w '%{http_code}' "$url")
[ "$code" = 500 ] || { echo "node-probe: expected 500 from the broken app, got $code" >&2; exit 1; }

start=$(date +%s%N)
for _ in $(seq "$N"); do
	nsenter -t "$target" -n curl -s -o /dev/null "$url"
done
end=$(date +%s%N)
curl_us=$(( (end - start) / N / 1000 ))
echo "nsenter -t PID -n curl: ${curl_us} µs/request over $N requests"

out=$(go test -run '^$' -bench 'BenchmarkHTTPProbe/kdiag$' -benchtime "${N}x" ./builtins/node/)
ns=$(awk '/BenchmarkHTTPProbe\/kdiag/ {print $3}' <<<"$out")
[ -n "$ns" ] || { echo "$out" >&2; exit 1; }
kdiag_us=$(( ${ns%.*} / 1000 ))
echo "kdiag http_probe:       ${kdiag_us} µs/request over $N requests"
awk -v a="$curl_us" -v b="$kdiag_us" 'BEGIN { printf "ratio: http_probe is %.1fx faster than nsenter+curl\n", a / (b > 0 ? b : 1) }'
