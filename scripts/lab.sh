#!/usr/bin/env bash
# Sets up (idempotently) and starts the lab: the fixture registry on
# 127.0.0.1:5000, berthd on /run/berth/docker.sock and the page on
# http://127.0.0.1:8080. Without root, berthd cannot run containers: it then
# serves the page alone, which runs node1 as the offline simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

if [ "$(id -u)" = 0 ]; then
  scripts/setup.sh
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo scripts/setup.sh
else
  echo "[lab] not root and no sudo: skipping system setup; the page will run the simulator" >&2
fi

cargo build --locked --release -p berth-backend
trunk build --release

. scripts/lib.sh
# The learner's home on node1 (the page terminal's ~): the GourmetGram build
# context for the lab's last section, `docker build -t gourmetgram-app:0.0.1 gourmetgram`.
LAB_HOME=${BERTH_LAB_HOME:-$BERTH_STATE/home}
if [ "$(id -u)" = 0 ]; then
  scripts/gourmetgram.sh build
  mkdir -p "$LAB_HOME/gourmetgram"
  if [ ! -f "$LAB_HOME/gourmetgram/Dockerfile" ]; then
    tar -C gourmetgram --exclude=./target -cf - . | tar -C "$LAB_HOME/gourmetgram" -xf -
  else # keep the learner's edits; refresh what the build made
    cp gourmetgram/bin/gourmetgram "$LAB_HOME/gourmetgram/bin/gourmetgram"
    cp gourmetgram/food11.pth "$LAB_HOME/gourmetgram/food11.pth"
  fi
fi
if [ "$(id -u)" = 0 ]; then
  registry_config
  if curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
    echo "[lab] a registry already answers on 127.0.0.1:5000; using it"
  else
    registry_start 127.0.0.1:5000
    trap 'registry_stop' EXIT
    echo "[lab] fixture registry on 127.0.0.1:5000 (pid $REGISTRY_PID)"
  fi
fi

echo "[lab] berthd: Engine API on unix:///run/berth/docker.sock; it prints the page's address with its token"
echo "[lab]   (open that address; the token is also in /var/lib/berth/lab-token, mode 0600)"
echo "[lab] in another terminal: export DOCKER_HOST=unix:///run/berth/docker.sock; docker run hello-world"
target/release/berthd \
  --host unix:///run/berth/docker.sock \
  --page-addr "${BERTH_PAGE_ADDR:-127.0.0.1:8080}" \
  --page-dir dist \
  --lab-home "$LAB_HOME" \
  --registry-mirror http://127.0.0.1:5000 \
  --insecure-registry 127.0.0.1:5000 --insecure-registry localhost:5000 \
  "$@"
