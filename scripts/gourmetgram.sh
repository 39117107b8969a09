#!/usr/bin/env bash
# GourmetGram's toolchain pieces, idempotent:
#   torch     PyTorch 2.13.0 (the version tch 0.26 wants) from PyPI into a venv
#             under the state dir: its torch/lib is libtorch, its Python makes
#             the test weights and golden logits and runs the Flask reference.
#   libtorch  a CPU-only view of that libtorch for building and running tch
#             (the wheel's libtorch.so pulls in CUDA; tch needs none of it).
#   weights   fixed-seed food11.pth + PyTorch golden logits (tools/make_weights.py).
#   build     the release binary, and the Docker build context in gourmetgram/
#             (bin/gourmetgram, food11.pth) for `docker build … gourmetgram`.
#   env       prints the environment for cargo commands on the crate.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
# Pinned: the parity test holds the Rust preprocessing to this Pillow's
# pixels (13 chooses the order of the two resize passes by the shapes).
PILLOW_VERSION=13.0.0
VENV=$BERTH_STATE/torch-venv
PY=$VENV/bin/python
SITE=$VENV/lib/python3.11/site-packages
LIBTORCH=$BERTH_STATE/libtorch-cpu
GG_STATE=$BERTH_STATE/gourmetgram

log() { printf '\033[1;35m[gourmetgram]\033[0m %s\n' "$*"; }

torch_install() {
  if [ -x "$PY" ] && "$PY" -c "import torch, torchvision, flask, PIL; assert torch.__version__.startswith('$TORCH_VERSION') and PIL.__version__ == '$PILLOW_VERSION'" 2>/dev/null; then
    log "torch $TORCH_VERSION present in $VENV"; return
  fi
  log "pip: torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION (+ CUDA runtime wheels its Python module links; ~1.5 min, 4.8 GB)"
  # (Debian's own python3 needs python3-venv, which setup.sh installs.)
  [ -x "$VENV/bin/pip" ] || { rm -rf "$VENV"; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "pillow==$PILLOW_VERSION" numpy==2.4.6 flask==3.1.3
}

libtorch_view() {
  local T=$SITE/torch
  local stamp="$TORCH_VERSION $(stat -c %s "$T/lib/libtorch_cpu.so")"
  if [ -f "$LIBTORCH/.stamp" ] && [ "$(cat "$LIBTORCH/.stamp")" = "$stamp" ]; then return; fi
  log "libtorch: CPU-only view in $LIBTORCH"
  rm -rf "$LIBTORCH"; mkdir -p "$LIBTORCH/lib"
  ln -s "$T/include" "$LIBTORCH/include"
  for f in libtorch_cpu.so libc10.so libgomp.so.1; do ln -s "$T/lib/$f" "$LIBTORCH/lib/$f"; done
  ln -s libgomp.so.1 "$LIBTORCH/lib/libgomp.so"
  # libtorch_cpu links the CUDA runtime and profiler libraries (never called on the CPU).
  for d in cuda_runtime cuda_cupti cu13; do
    [ -d "$SITE/nvidia/$d/lib" ] || continue
    for f in "$SITE/nvidia/$d/lib"/libcudart.so.* "$SITE/nvidia/$d/lib"/libcupti.so.*; do
      [ -e "$f" ] && ln -sf "$f" "$LIBTORCH/lib/"
    done
  done
  # tch links -ltorch; the wheel's libtorch.so only forwards to torch_cpu and
  # torch_cuda. An empty libtorch.so keeps CUDA out of the link.
  echo 'void berth_libtorch_cpu_only(void) {}' > "$LIBTORCH/empty.c"
  gcc -shared -fPIC -o "$LIBTORCH/lib/libtorch.so" "$LIBTORCH/empty.c"
  echo "$stamp" > "$LIBTORCH/.stamp"
}

weights() {
  local stamp
  stamp=$(sha256sum gourmetgram/tools/make_weights.py gourmetgram/static/test_image.jpeg | sha256sum | cut -c1-16)
  if [ -f "$GG_STATE/.stamp" ] && [ "$(cat "$GG_STATE/.stamp")" = "$stamp" ] && [ -f "$GG_STATE/food11.pth" ]; then
    log "test weights present: $GG_STATE/food11.pth"; return
  fi
  log "fixed-seed test weights and golden logits → $GG_STATE"
  mkdir -p "$GG_STATE"
  "$PY" gourmetgram/tools/make_weights.py "$GG_STATE" gourmetgram/static/test_image.jpeg
  echo "$stamp" > "$GG_STATE/.stamp"
}

cargo_env() {
  echo "export LIBTORCH=$LIBTORCH LIBTORCH_CXX11_ABI=1 LD_LIBRARY_PATH=$LIBTORCH/lib GOURMETGRAM_GOLDEN=$GG_STATE"
}

build() {
  eval "$(cargo_env)"
  (cd gourmetgram && cargo build --locked --release --bins --tests)
  mkdir -p gourmetgram/bin
  install -m 0755 gourmetgram/target/release/gourmetgram gourmetgram/bin/gourmetgram
  cmp -s "$GG_STATE/food11.pth" gourmetgram/food11.pth 2>/dev/null || cp "$GG_STATE/food11.pth" gourmetgram/food11.pth
}

case "${1:-}" in
  torch) torch_install ;;
  libtorch) libtorch_view ;;
  weights) weights ;;
  setup) torch_install; libtorch_view; weights ;;
  build) build ;;
  env) cargo_env ;;
  *) echo "usage: $0 torch|libtorch|weights|setup|build|env" >&2; exit 2 ;;
esac
