#!/usr/bin/env bash
# Runs every test: setup (idempotent, seconds when done), the native build,
# the page build, then all tests with a leak check around them that fails the
# run if anything is left in the root namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# On CI, no incremental caches (a fresh target/ on a small disk: they were
# near half of it); a developer's reruns keep theirs.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh must run as root: its tests make namespaces, links and mounts (inside sandboxes)" >&2
  exit 1
fi

t0=$SECONDS
scripts/setup.sh
echo "[test] setup: $((SECONDS - t0)) s"

t1=$SECONDS
# The page (frontend) is built for wasm32 by Trunk below, and its tests run
# in Chromium: nothing of it needs a native build.
cargo build --locked --workspace --exclude berth-frontend --bins --tests
echo "[test] native build: $((SECONDS - t1)) s"

# GourmetGram (its own workspace: tch links libtorch): the release binary and
# the build context its e2e test hands to `docker build`, and its tests.
t5=$SECONDS
scripts/gourmetgram.sh build
echo "[test] gourmetgram build: $((SECONDS - t5)) s"

t2=$SECONDS
trunk build --release
echo "[test] page build: $((SECONDS - t2)) s ($(du -k dist/*.wasm | cut -f1) KB wasm)"

LEAK=target/debug/berth-leakcheck
$LEAK sweep
snap=$(mktemp /tmp/berth-leak.XXXXXX)
$LEAK snapshot "$snap"

status=0
t3=$SECONDS
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --locked --workspace --exclude berth-frontend --no-fail-fast || status=$?
else
  cargo test --locked --workspace --exclude berth-frontend --no-fail-fast || status=$?
fi
echo "[test] tests: $((SECONDS - t3)) s"

# GourmetGram's own tests: PyTorch parity (pixels and logits), the HTTP service.
t6=$SECONDS
(eval "$(scripts/gourmetgram.sh env)" && cd gourmetgram && cargo test --locked --release) || status=$?
echo "[test] gourmetgram tests: $((SECONDS - t6)) s"

# The page's component tests, in headless Chromium (frontend/webdriver.json).
t4=$SECONDS
(cd frontend && CHROMEDRIVER=/usr/bin/chromedriver CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --locked --target wasm32-unknown-unknown) || status=$?
echo "[test] page component tests: $((SECONDS - t4)) s"

# Formatting (rustfmt.toml): the main workspace and GourmetGram's.
if ! cargo fmt --all -- --check >/dev/null || ! (cd gourmetgram && cargo fmt -- --check >/dev/null); then
  echo "[test] cargo fmt --check: unformatted code (run cargo fmt, and in gourmetgram/)" >&2
  status=1
fi

$LEAK compare "$snap" $$ || status=1
rm -f "$snap"
echo "[test] total: $((SECONDS - t0)) s"
exit $status
