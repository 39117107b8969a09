#!/usr/bin/env bash
# Benchmark (not a test) for the page, against a release berthd in a
# throwaway node1 (network + mount namespace, the fixture registry inside):
#
#   scripts/bench-page.sh [CHANGES] [VIEWERS] [CONTAINERS]   (1000 200 50)
#
# Prints: the page's WASM size gzipped; kernel change → WebSocket event
# latency (p50/p99 over CHANGES veth pairs); lag of VIEWERS WebSocket viewers
# while CONTAINERS containers start and stop; time to interactive in headless
# Chromium (reached over a veth to the namespace); and the simulator's
# command times in the page served as static files.
set -euo pipefail
cd "$(dirname "$0")/.."
CHANGES=${1:-1000}; VIEWERS=${2:-200}; CONTAINERS=${3:-50}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"
cargo build --locked --release -q -p berth-backend -p berth-e2e --bins
[ -f dist/index.html ] || trunk build --release >/dev/null

NS=berth-benchpage-$$
W=$(mktemp -d /var/tmp/berth-benchpage.XXXXXX)
. scripts/lib.sh
PIDS=()
cleanup() {
  set +e
  stop_pids "${PIDS[@]}"
  ip link del bpage0 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add bpage0 type veth peer name eth0 netns "$NS"
ip addr add 198.18.251.1/30 dev bpage0; ip link set bpage0 up
ip -n "$NS" addr add 198.18.251.2/30 dev eth0; ip -n "$NS" link set eth0 up

REGISTRY_HTTP_ADDR=127.0.0.1:5000 nsenter --net="/run/netns/$NS" /usr/bin/docker-registry serve "$BERTH_STATE/registry/config.yml" >"$W/registry.log" 2>&1 &
PIDS+=($!)
nsenter --net="/run/netns/$NS" unshare -m --propagation private target/release/berthd \
  --host "unix://$W/berth.sock" --data-root "$W/berth" --exec-root "$W/berth-run" \
  --page-addr 0.0.0.0:8080 --page-dir dist --token-file "$W/lab-token" --registry-mirror http://127.0.0.1:5000 >"$W/berthd.log" 2>&1 &
PIDS+=($!)
export DOCKER_HOST=unix://$W/berth.sock
for _ in $(seq 1 300); do [ -S "$W/berth.sock" ] && docker version >/dev/null 2>&1 && break; sleep 0.1; done
inns() { nsenter --net="/run/netns/$NS" "$@"; }
inns docker pull -q alpine >/dev/null
export BERTH_TOKEN=$(cat "$W/lab-token")

echo "page WASM: $(stat -c %s dist/*.wasm) bytes, $(gzip -9 -c dist/*.wasm | wc -c) gzipped (target ≤ 400 KB gzipped)"
inns target/release/berth-bench-page latency "$CHANGES"
inns target/release/berth-bench-page viewers "$VIEWERS" "$CONTAINERS"
target/release/berth-bench-page tti "http://198.18.251.2:8080/?token=$BERTH_TOKEN"
# The simulator: the page as static files, no berthd.
SPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$SPORT" --bind 127.0.0.1 --directory dist >/dev/null 2>&1 &
PIDS+=($!)
sleep 1
target/release/berth-bench-page sim "http://127.0.0.1:$SPORT/"
