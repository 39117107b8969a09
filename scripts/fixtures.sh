#!/usr/bin/env bash
# Builds the fixture images (scripts/fixtures.py) and pushes them into the
# project's local registry storage. Idempotent: a stamp of the builder and of
# the Debian package versions it reads decides whether anything is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

stamp_now=$( { sha256sum scripts/fixtures.py scripts/lib.sh;
  dpkg-query -W busybox-static nginx-light libc6 libstdc++6 libturbojpeg0 docker-registry;
  cat "$BERTH_STATE/libtorch-cpu/.stamp"; } | sha256sum | cut -d' ' -f1)
stamp_file="$BERTH_STATE/registry/.fixtures-stamp"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_now" ]; then
  echo "[fixtures] up to date in $BERTH_STATE/registry"
  exit 0
fi

registry_config
port=$(free_port)
# A private registry process on a free loopback port, only for the push.
registry_start "127.0.0.1:$port"
trap 'registry_stop' EXIT
python3 scripts/fixtures.py "http://127.0.0.1:$port"
echo "$stamp_now" > "$stamp_file"
