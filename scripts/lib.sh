# Shared shell helpers for berth's scripts (sourced, not run).
BERTH_STATE=${BERTH_STATE:-/var/lib/berth-lab}   # the project's state dir
export BERTH_STATE
mkdir -p "$BERTH_STATE/registry/storage"

# Writes the registry config the lab and the tests use: filesystem storage
# under the state dir, no auth (Debian's default config turns htpasswd on).
# The listen address is given per process with REGISTRY_HTTP_ADDR.
registry_config() {
  cat > "$BERTH_STATE/registry/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $BERTH_STATE/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YML
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# registry_start ADDR: starts docker-registry on ADDR, waits until it answers.
REGISTRY_PID=
registry_start() {
  REGISTRY_HTTP_ADDR="$1" /usr/bin/docker-registry serve "$BERTH_STATE/registry/config.yml" \
    >>"$BERTH_STATE/registry/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://$1/v2/" >/dev/null 2>&1 && return 0
    kill -0 "$REGISTRY_PID" 2>/dev/null || { tail -5 "$BERTH_STATE/registry/registry.log"; return 1; }
    sleep 0.1
  done
  echo "registry on $1 did not answer" >&2; return 1
}

registry_stop() {
  if [ -n "$REGISTRY_PID" ] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
    kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  REGISTRY_PID=
}

# stop_pids PID...: SIGTERM, up to 10 s to exit, then SIGKILL (only the
# processes the caller started, by pid).
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  return 0
}
