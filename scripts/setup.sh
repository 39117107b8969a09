#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: installs every system package,
# toolchain piece, npm package and fixture image berth needs. Each step checks
# first and skips what is already in place, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- apt packages -----------------------------------------------------------
APT_PKGS=(
  iproute2 iptables iputils-ping jq curl ca-certificates procps psmisc util-linux bsdutils
  gcc libc6-dev python3 python3-venv
  docker-registry busybox-static nginx-light
  chromium chromium-driver
  pkg-config
  libturbojpeg0-dev  # GourmetGram decodes JPEGs with libjpeg-turbo, as PIL does
)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  # Package maintainer scripts must not start services (nginx, registry) on
  # the machine: the lab and the tests start their own, privately configured.
  policy_set=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_set=1
  fi
  trap '[ $policy_set = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ $policy_set = 1 ] && rm -f /usr/sbin/policy-rc.d
  trap - EXIT
else
  log "apt: all ${#APT_PKGS[@]} packages present"
fi

# --- docker CLI ---------------------------------------------------------------
# The lab drives berthd with the unmodified docker CLI. Use the one on PATH;
# otherwise take Debian's docker.io for its client. Its daemon is never a
# service (it would take /var/run/docker.sock and docker0): the tests start
# it only inside a sandbox, as the reference berth's answers are compared
# with (e2e/tests/e2e/reference.rs), so it is installed when missing too.
if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  log "docker CLI and reference daemon: installing Debian's docker.io (never started as a service)"
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
  rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.service docker.socket containerd.service 2>/dev/null || true
  fi
else
  log "docker CLI: $(docker --version)"
fi

# --- Rust toolchain pieces -----------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

lock_version() { # version of a package as recorded in Cargo.lock
  awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/version = |"/,""); print; exit}' Cargo.lock
}
# A fast release profile for tool installs: no LTO, many codegen units. The
# tools behave the same; a cold install takes about half the time.
fast_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install "$@"
}
TRUNK_VERSION=0.21.14
if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  log "cargo install trunk $TRUNK_VERSION (slow: ~17 min cold)"
  fast_install trunk --locked --version "$TRUNK_VERSION"
else
  log "trunk $TRUNK_VERSION present"
fi
WB_VERSION=$(lock_version wasm-bindgen)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WB_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WB_VERSION (slow: ~11 min cold)"
  # Its own lock pins a webpki-roots the registry lacks: install without --locked.
  fast_install wasm-bindgen-cli --version "$WB_VERSION"
else
  log "wasm-bindgen $WB_VERSION present"
fi

# --- npm: xterm.js and binaryen's wasm-opt (Debian's 108 breaks the app) --------
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -f node_modules/@xterm/xterm/lib/xterm.js ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
else
  log "npm packages present"
fi

# --- crates: fetch once so builds (and Trunk, which runs offline) need no network --
log "cargo fetch --locked"
cargo fetch --locked -q

# --- kubernetes-validate from PyPI: the schema check of deploy/kubernetes -------
# (classroom/tests/kubernetes_manifests.rs runs it; it ships the schemas, so
# validating needs no network), in its own venv under the lab's state dir.
KV_VERSION=1.37.0
KV_VENV=${BERTH_STATE:-/var/lib/berth-lab}/kubernetes-validate-venv
if [ "$("$KV_VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$KV_VERSION" ]; then
  log "pip: kubernetes-validate $KV_VERSION into $KV_VENV"
  [ -x "$KV_VENV/bin/pip" ] || { rm -rf "$KV_VENV"; python3 -m venv "$KV_VENV"; }
  "$KV_VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
else
  log "kubernetes-validate $KV_VERSION present"
fi

# --- Docker's Python SDK and pytest from PyPI: e2e/sdk/python drives berthd
# through the client library lab scripts use (e2e/tests/e2e/sdk.rs runs it) ---
SDK_VERSIONS="7.2.0 9.2.0"
SDK_VENV=${BERTH_STATE:-/var/lib/berth-lab}/docker-sdk-venv
if [ "$("$SDK_VENV/bin/python" -c 'import docker, pytest; print(docker.__version__, pytest.__version__)' 2>/dev/null)" != "$SDK_VERSIONS" ]; then
  log "pip: docker and pytest ($SDK_VERSIONS) into $SDK_VENV"
  [ -x "$SDK_VENV/bin/pip" ] || { rm -rf "$SDK_VENV"; python3 -m venv "$SDK_VENV"; }
  "$SDK_VENV/bin/pip" install -q --disable-pip-version-check "docker==7.2.0" "pytest==9.2.0"
else
  log "docker SDK and pytest ($SDK_VERSIONS) present"
fi

# --- GourmetGram: PyTorch 2.13.0 from PyPI (libtorch for tch, and the Python that
# makes the fixed-seed test weights and golden logits), and the crate's deps ----
"$ROOT/scripts/gourmetgram.sh" setup
(cd gourmetgram && cargo fetch --locked -q)

# --- fixture images into the local registry ---------------------------------------
"$ROOT/scripts/fixtures.sh"

log "setup complete"
