#!/usr/bin/env bash
# End-to-end test of the compose cluster: builds the image, starts three
# nodes (which form the cluster by themselves), writes through one and reads
# through another, stops the leader's container and checks that writes
# continue, starts it again and checks that it caught up, re-images one node
# (empty volume) and checks that it rejoins, then removes everything
# (containers, network, volumes).
#   docker/test-cluster.sh            (SKIP_BUILD=1 to reuse chronos:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-docker-compose}
PROJECT=chronostest
compose() { $COMPOSE -p "$PROJECT" -f docker/docker-compose.yml "$@"; }
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[ -n "${SKIP_BUILD:-}" ] || docker/build-image.sh
CHRONOS=${CHRONOS_BIN:-$TARGET_DIR/x86_64-unknown-linux-gnu/dist/chronos}
declare -A PORT=([node1]=8001 [node2]=8002 [node3]=8003)

cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
compose up -d

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; compose logs --tail 30 >&2 || true; exit 1; }
sql() { "$CHRONOS" client --leader "127.0.0.1:$1" --format csv "${@:3}" -e "$2"; }
count() { sql "$1" "SELECT count(*) FROM readings" "${@:2}" 2>/dev/null | tail -n 1; }
leader() { "$CHRONOS" cluster status --leader "127.0.0.1:$1" 2>/dev/null | sed -n 's/^leader: \([a-z0-9]*\),.*/\1/p'; }

step "waiting for a leader"
for _ in $(seq 1 60); do L=$(leader 8001 || true); [ -n "$L" ] && [ "$L" != none ] && break; sleep 1; done
[ -n "${L:-}" ] && [ "$L" != none ] || fail "no leader after 60 s"
"$CHRONOS" cluster status --leader 127.0.0.1:8001

step "write through node1, read through node2"
sql 8001 "CREATE TABLE readings (id INT PRIMARY KEY, sensor STRING, value FLOAT, at TIMESTAMP DEFAULT now())" >/dev/null
values=$(for i in $(seq 1 100); do printf "(%d, 's%d', %d.5)," "$i" $((i % 7)) "$i"; done)
sql 8001 "INSERT INTO readings (id, sensor, value) VALUES ${values%,}" >/dev/null
[ "$(count 8002)" = 100 ] || fail "node2 does not read the 100 rows written through node1"
echo "node2 reads 100 rows"

step "stop the leader ($L) and keep writing"
compose stop "$L"
survivor=node1; [ "$L" = node1 ] && survivor=node2
values=$(for i in $(seq 101 200); do printf "(%d, 's%d', %d.5)," "$i" $((i % 7)) "$i"; done)
sql "${PORT[$survivor]}" "INSERT INTO readings (id, sensor, value) VALUES ${values%,}" >/dev/null \
  || fail "writes stopped with the leader down"
[ "$(count "${PORT[$survivor]}")" = 200 ] || fail "$survivor does not read 200 rows"
"$CHRONOS" cluster status --leader "127.0.0.1:${PORT[$survivor]}"

step "start $L again; it catches up"
compose start "$L"
for _ in $(seq 1 60); do
  [ "$(count "${PORT[$L]}" --consistency local || true)" = 200 ] && break
  sleep 1
done
[ "$(count "${PORT[$L]}" --consistency local)" = 200 ] || fail "$L did not catch up"
echo "$L reads 200 rows locally"
for node in node1 node2 node3; do
  rows=$(sql "${PORT[$node]}" "SELECT * FROM readings ORDER BY id" --consistency local | md5sum)
  echo "$node: $rows"
  [ -z "${first:-}" ] && first=$rows
  [ "$rows" = "$first" ] || fail "$node holds different rows"
done

step "healthchecks"
for _ in $(seq 1 30); do
  healthy=$(docker inspect -f '{{.State.Health.Status}}' $(compose ps -q) | grep -c '^healthy$' || true)
  [ "$healthy" = 3 ] && break
  sleep 1
done
[ "$healthy" = 3 ] || fail "only $healthy of 3 containers are healthy"
echo "3 of 3 containers healthy"

step "re-image node3 (new container, empty volume, same id); it rejoins"
compose rm -sf node3 >/dev/null
docker volume rm "${PROJECT}_node3" >/dev/null
compose up -d node3
for _ in $(seq 1 60); do
  [ "$(count 8003 --consistency local || true)" = 200 ] && break
  sleep 1
done
[ "$(count 8003 --consistency local)" = 200 ] || fail "the re-imaged node3 did not catch up"
# Read whole first: with pipefail, grep -q leaving early fails the pipe.
node3_log=$(compose logs node3 2>&1)
grep -q "removing it before joining again" <<<"$node3_log" || fail "node3 did not replace its old entry"
"$CHRONOS" cluster status --leader 127.0.0.1:8001
echo "node3 rejoined as a new member and reads 200 rows locally"
echo "PASS"
