#!/usr/bin/env bash
# Starts a class on this machine: sets up (idempotently, as scripts/lab.sh
# does), builds berthd, berth-hub and the page, then runs berth-hub with the
# local spawner: every learner who opens the join link gets their own node1
# (namespaces, a cgroup, their own berthd and fixture registry).
# It prints the instructor's link (with its token) and the class's join link.
#
#   scripts/classroom.sh [CLASS-NAME] [berth-hub flags…]
#
# Environment: BERTH_HUB_ADDR (default 127.0.0.1:8090; 0.0.0.0:8090 to take
# learners from other machines, best with --tls-cert/--tls-key), BERTH_HUB_STATE
# (default /var/lib/berth-hub), CLASS_CAPACITY (30), CLASS_HOURS (4).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "[classroom] the local spawner makes namespaces, links and cgroups: run as root (sudo $0)" >&2
  exit 1
fi
scripts/setup.sh

cargo build --locked --release -p berth-backend --bin berthd -p berth-classroom --bin berth-hub
trunk build --release

. scripts/lib.sh
registry_config   # the fixture images' storage, which every node serves read-only

NAME=${1:-Class}
[ $# -gt 0 ] && shift
echo "[classroom] berth-hub on ${BERTH_HUB_ADDR:-127.0.0.1:8090}; every learner's node1 runs target/release/berthd"
exec target/release/berth-hub \
  --berthd target/release/berthd \
  --page-dir dist \
  --registry-storage "$BERTH_STATE/registry/storage" \
  --class "$NAME" --capacity "${CLASS_CAPACITY:-30}" --expires-in-s "$(( ${CLASS_HOURS:-4} * 3600 ))" \
  "$@"
