#!/usr/bin/env bash
# Benchmark (not a test): berthd against a reference Docker daemon, in one
# run, on the same machine, with the same fixture registry, each daemon in
# its own throwaway network namespace and private mount namespace.
#
#   scripts/bench-engine.sh [ROUNDS]      (default 15)
#
# Prints medians and the ratio berth/docker for: `docker run --rm alpine
# true`, `docker run -d` + `docker stop -t 0`, a cold pull of nginx:alpine,
# and an uncached and a cached `docker build` of the same lab-shaped context
# (legacy builder on both: DOCKER_BUILDKIT=0).
# Docker (Debian's docker.io, 20.10) is only the yardstick here; berth never
# uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-15}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

if ! command -v dockerd >/dev/null; then
  echo "[bench] installing Debian's docker.io for the reference daemon (not started as a service)"
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
cargo build --locked --release -p berth-backend -q

NS=berth-bench-$$
W=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
. scripts/lib.sh
PIDS=()
cleanup() {
  set +e
  stop_pids "${PIDS[@]}"
  ip netns del "$NS" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { nsenter --net="/run/netns/$NS" "$@"; }

# The fixture registry, inside the namespace, on its own loopback.
# (nsenter and unshare exec, so $! is the daemon's own pid.)
REGISTRY_HTTP_ADDR=127.0.0.1:5000 nsenter --net="/run/netns/$NS" /usr/bin/docker-registry serve "$BERTH_STATE/registry/config.yml" >"$W/registry.log" 2>&1 &
PIDS+=($!)

# Docker: its own data root, exec root, socket and pid file; a private mount
# namespace so its mounts end with it. Its docker0 and rules live in $NS.
nsenter --net="/run/netns/$NS" unshare -m --propagation private dockerd \
  --data-root "$W/docker" --exec-root "$W/docker-run" --pidfile "$W/docker.pid" \
  --host "unix://$W/docker.sock" --registry-mirror http://127.0.0.1:5000 \
  --storage-driver overlay2 >"$W/dockerd.log" 2>&1 &
PIDS+=($!)
nsenter --net="/run/netns/$NS" unshare -m --propagation private target/release/berthd \
  --host "unix://$W/berth.sock" --data-root "$W/berth" --exec-root "$W/berth-run" \
  --page-addr 127.0.0.1:8080 --registry-mirror http://127.0.0.1:5000 >"$W/berthd.log" 2>&1 &
PIDS+=($!)

for s in docker berth; do
  for _ in $(seq 1 300); do [ -S "$W/$s.sock" ] && DOCKER_HOST=unix://$W/$s.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  DOCKER_HOST=unix://$W/$s.sock docker version --format "[bench] $s: {{.Server.Version}} (API {{.Server.APIVersion}})" \
    || { echo "$s did not start"; tail -20 "$W/${s}d.log" 2>/dev/null; exit 1; }
done

now() { date +%s%N; }
# time_ms ENGINE CMD... : runs CMD with DOCKER_HOST set, prints milliseconds
time_ms() {
  local engine=$1; shift
  local t0 t1
  t0=$(now)
  DOCKER_HOST=unix://$W/$engine.sock inns "$@" >/dev/null 2>&1
  t1=$(now)
  echo $(( (t1 - t0) / 1000000 ))
}

# A lab-shaped build context: requirements first, then the app.
CTX=$W/ctx
mkdir -p "$CTX/app"
printf 'flask\npillow\nnumpy\n' > "$CTX/requirements.txt"
for i in $(seq 1 50); do head -c 4096 /dev/urandom | base64 > "$CTX/app/module$i.py"; done
cat > "$CTX/Dockerfile" <<'DF'
FROM alpine
WORKDIR /app
COPY requirements.txt ./
RUN mkdir -p /deps && for p in $(cat requirements.txt); do echo "$p installed" > /deps/$p; done
COPY . .
EXPOSE 8000
CMD ["httpd", "-f", "-p", "8000", "-h", "/app"]
DF
export DOCKER_BUILDKIT=0

declare -A RESULTS
for engine in docker berth; do
  export DOCKER_HOST=unix://$W/$engine.sock
  inns docker pull -q alpine >/dev/null
  run=() stop=() pull=()
  for i in $(seq 1 "$ROUNDS"); do
    run+=("$(time_ms "$engine" docker run --rm alpine true)")
    t0=$(now)
    id=$(inns docker run -d alpine sleep 300)
    inns docker stop -t 0 "$id" >/dev/null
    t1=$(now)
    stop+=($(( (t1 - t0) / 1000000 )))
    inns docker rm "$id" >/dev/null
  done
  for i in $(seq 1 "$((ROUNDS < 8 ? ROUNDS : 8))"); do
    inns docker rmi -f nginx:alpine >/dev/null 2>&1 || true
    pull+=("$(time_ms "$engine" docker pull nginx:alpine)")
  done
  build=() cached=()
  for i in $(seq 1 "$((ROUNDS < 6 ? ROUNDS : 6))"); do
    build+=("$(time_ms "$engine" docker build --no-cache -q -t bench-app "$CTX")")
    cached+=("$(time_ms "$engine" docker build -q -t bench-app "$CTX")")
  done
  RESULTS[$engine.build]="${build[*]}"
  RESULTS[$engine.cached]="${cached[*]}"
  RESULTS[$engine.run]="${run[*]}"
  RESULTS[$engine.stop]="${stop[*]}"
  RESULTS[$engine.pull]="${pull[*]}"
done

python3 - "$ROUNDS" <<PY
import statistics, sys
r = {
  # Targets: issue 14's where it set one (run --rm, run -d + stop, a cached
  # build), the first engine issue's otherwise.
  "docker run --rm alpine true": ("${RESULTS[docker.run]}", "${RESULTS[berth.run]}", 0.15),
  "docker run -d + docker stop -t 0": ("${RESULTS[docker.stop]}", "${RESULTS[berth.stop]}", 0.20),
  "cold pull nginx:alpine": ("${RESULTS[docker.pull]}", "${RESULTS[berth.pull]}", 0.70),
  "docker build, no cache": ("${RESULTS[docker.build]}", "${RESULTS[berth.build]}", 0.50),
  "docker build, all cached": ("${RESULTS[docker.cached]}", "${RESULTS[berth.cached]}", 0.40),
}
print(f"\n{'operation':36} {'docker p50':>11} {'berth p50':>10} {'ratio':>7} {'target':>7}")
for name, (d, b, target) in r.items():
    dm = statistics.median(map(int, d.split())); bm = statistics.median(map(int, b.split()))
    ratio = bm / dm if dm else float('nan')
    ok = "ok" if ratio <= target else "MISSED"
    print(f"{name:36} {dm:>9.0f}ms {bm:>8.0f}ms {ratio:>7.2f} {'<= ' + str(target):>7} {ok}")
PY
