#!/usr/bin/env bash
# Benchmark (not a test) for the classroom on one machine: berth-hub with the
# local spawner (release berthd and berth-hub) inside a throwaway sandbox.
#
#   scripts/bench-classroom.sh [LEARNERS] [ACTIVE]   (30 10)
#
# LEARNERS join one by one (each join timed until their node1 runs); the
# memory of an idle learner is the PSS of their node's processes (berthd,
# registry) plus the hub's growth, a learner; then ACTIVE of them run the
# lab's commands in their terminals at once (BENCH_ROUNDS rounds, default 5)
# while the instructor's feed times every event (berthd's event time → the
# frame's arrival at the instructor, through the hub). Last line:
#   classroom: learners=N active=M join_p50_ms=… lag_p99_ms=… mb_per_learner=…
set -euo pipefail
cd "$(dirname "$0")/.."
LEARNERS=${1:-30}; ACTIVE=${2:-10}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"
cargo build --locked --release -q -p berth-backend --bin berthd -p berth-classroom --bin berth-hub
[ -f dist/index.html ] || trunk build --release >/dev/null
. scripts/lib.sh
[ -d "$BERTH_STATE/registry/storage/docker" ] || { echo "no fixture images: run scripts/setup.sh" >&2; exit 1; }
out=$(mktemp /tmp/berth-bench-classroom.XXXXXX)
trap 'rm -f "$out"' EXIT
BERTHD="$PWD/target/release/berthd" BENCH_LEARNERS=$LEARNERS BENCH_ACTIVE=$ACTIVE \
  cargo test --locked -q -p berth-e2e --test e2e classroom::bench_classroom -- --ignored --nocapture --test-threads 1 2>&1 | tee "$out" >&2
line=$(grep '^classroom: learners=' "$out" | tail -1)
[ -n "$line" ] || { echo "the benchmark did not finish" >&2; exit 1; }
echo "$line"
