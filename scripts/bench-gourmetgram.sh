#!/usr/bin/env bash
# GourmetGram, Flask (the original's shape, in PyTorch) against the Rust
# service (axum + tch), in one run on this machine: same weights, same image,
# p50/p99 latency of POST /predict and throughput with 1 and 8 concurrent
# clients. Both listen on 127.0.0.1; both are ended by pid at the end.
#   usage: scripts/bench-gourmetgram.sh [REQUESTS_PER_CLIENT]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/gourmetgram.sh setup >/dev/null
scripts/gourmetgram.sh build >/dev/null
eval "$(scripts/gourmetgram.sh env)"
PY=$BERTH_STATE/torch-venv/bin/python
GG=$BERTH_STATE/gourmetgram
IMAGE=gourmetgram/static/test_image.jpeg
PER_CLIENT=${1:-12}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { # URL
  for _ in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}

flask_port=$(free_port)
(cd "$GG" && LD_LIBRARY_PATH= FOOD11_MODEL=$GG/food11.pth FOOD11_TEST_IMAGE=$OLDPWD/$IMAGE \
  exec "$PY" "$OLDPWD/gourmetgram/tools/flask_app/app.py" "$flask_port") >/tmp/bench-flask.log 2>&1 &
pids+=($!)
rust_port=$(free_port)
gourmetgram/bin/gourmetgram --model "$GG/food11.pth" --listen "127.0.0.1:$rust_port" \
  --test-image "$IMAGE" >/tmp/bench-rust.log 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$flask_port/"
wait_http "http://127.0.0.1:$rust_port/healthz"

declare -A R
for c in 1 8; do
  n=$((c * PER_CLIENT))
  for svc in flask rust; do
    port=flask_port; [ $svc = rust ] && port=rust_port
    R[$svc,$c]=$(LD_LIBRARY_PATH= "$PY" gourmetgram/tools/loadgen.py "127.0.0.1:${!port}" "$IMAGE" "$c" "$n")
    echo "[bench] $svc, $c client(s): ${R[$svc,$c]}"
  done
done

field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
printf '\n| clients | service | p50 ms | p99 ms | req/s |\n|---|---|---|---|---|\n'
for c in 1 8; do
  for svc in flask rust; do
    printf '| %s | %s | %s | %s | %s |\n' "$c" "$svc" "$(field "${R[$svc,$c]}" p50_ms)" "$(field "${R[$svc,$c]}" p99_ms)" "$(field "${R[$svc,$c]}" rps)"
  done
done
for c in 1 8; do
  "$PY" - "${R[flask,$c]}" "${R[rust,$c]}" "$c" <<'PY'
import json, sys
f, r, c = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"[bench] {c} client(s): Rust p50 = {r['p50_ms'] / f['p50_ms']:.2f}× Flask's (target ≤ 0.5), "
      f"throughput = {r['rps'] / f['rps']:.2f}× (target ≥ 2 at 8 clients); errors flask {f['errors']} rust {r['errors']}")
PY
done
