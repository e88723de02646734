#!/usr/bin/env bash
# Runs the arm64 and armhf builds under qemu-user: each starts `chronos node`
# on a free loopback port, runs CREATE/INSERT/SELECT through `chronos client`
# (also under qemu), restarts the node and finds the rows again.
# Build first: packaging/build-debs.sh arm64 armhf (or cargo build --profile
# dist --target ... with ../shared/cross/env.sh).
#   packaging/smoke-arm.sh [arm64] [armhf]
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)
fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

for arch in "${arches[@]}"; do
  case "$arch" in
    arm64) bin=$TARGET_DIR/aarch64-unknown-linux-gnu/dist/chronos; run=(qemu-aarch64) ;;
    armhf) bin=$TARGET_DIR/armv7-unknown-linux-gnueabihf/dist/chronos; run=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
    *) fail "unknown architecture '$arch'" ;;
  esac
  [ -x "$bin" ] || fail "no $arch build at $bin"
  echo "== $arch: $(file -b "$bin" | cut -d, -f1-2)"
  dir=$(mktemp -d)
  port=$(free_port)
  start() {
    "${run[@]}" "$bin" node --data-dir "$dir" --address "127.0.0.1:$port" >>"$dir/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      "${run[@]}" "$bin" client --leader "127.0.0.1:$port" -e "SELECT 1" >/dev/null 2>&1 && return 0
      sleep 0.3
    done
    cat "$dir/node.log"; fail "$arch node did not start"
  }
  client() { "${run[@]}" "$bin" client --leader "127.0.0.1:$port" --format csv -e "$1"; }
  start
  client "CREATE TABLE t (id INT PRIMARY KEY, name STRING, at TIMESTAMP DEFAULT now()); INSERT INTO t (id, name) VALUES (1, 'one'), (2, 'two')" >/dev/null
  before=$(client "SELECT id, name FROM t ORDER BY id")
  kill -TERM "$pid"; wait "$pid" || fail "$arch node did not stop cleanly"
  start
  after=$(client "SELECT id, name FROM t ORDER BY id")
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
  [ "$before" = "$after" ] && [ "$(echo "$after" | wc -l)" = 3 ] || fail "$arch: rows before ($before) and after restart ($after) differ"
  echo "$after"
  echo "$arch: rows survive a restart under qemu"
done
echo PASS
