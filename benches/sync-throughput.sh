#!/usr/bin/env bash
# Sync throughput and backlog: a site writes ROWS rows while its upstream is
# down (the backlog it holds), then the upstream starts and the script times
# until every row is upstream. Both nodes run on 127.0.0.1 with the release
# binary. Prints the backlog, the sync rate and a check that both sides hold
# the same rows (count, key range and checksums).
#
#   cargo build --release && ROWS=1000000 benches/sync-throughput.sh
set -euo pipefail
ROWS=${ROWS:-1000000}
BATCH=${BATCH:-5000}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/chronos}
UP=${UP:-127.0.0.1:17100}
SITE=${SITE:-127.0.0.1:17200}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT

cat > "$DIR/hq.toml" <<TOML
id = "hq"
data_dir = "$DIR/data"
address = "$UP"
log_target = "stderr"
log_level = "warn"
[sync]
site_id = "hq"
sites = ["plant"]
TOML
cat > "$DIR/plant.toml" <<TOML
id = "plant"
data_dir = "$DIR/data"
address = "$SITE"
log_target = "stderr"
log_level = "warn"
[sync]
site_id = "plant"
upstream = "$UP"
batch_size = $BATCH
interval_ms = 200
tables = { readings = "push" }
TOML

wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
scalar() { "$BIN" client --leader "$1" --format csv -e "$2" | tail -1; }

"$BIN" node -c "$DIR/plant.toml" 2> "$DIR/plant.log" &
wait_port "$SITE"
echo "site: writing $ROWS rows (1,000 per INSERT) with the upstream down"
"$BIN" bench --leader "$SITE" --table readings --rows 1000 --clients 4 --count $((ROWS / 1000)) > "$DIR/bench.out" 2>/dev/null
grep -E "rows/s|ops/s" "$DIR/bench.out" | head -2 || true
sleep 6  # the backlog is counted every 5 s while the upstream is down
"$BIN" sync status --leader "$SITE" | sed -n '1,3p;/readings/p'
du -sh "$DIR/data/plant" | awk '{print "site data directory: " $1}'

"$BIN" node -c "$DIR/hq.toml" 2> "$DIR/hq.log" &
wait_port "$UP"
"$BIN" client --leader "$UP" -e "CREATE TABLE readings (id BIGINT PRIMARY KEY, client INT, value DOUBLE, note STRING)" > /dev/null
start=$(date +%s.%N)
# rows_pushed counts rows the upstream has committed (read from the site's
# status, so the wait itself puts no load on either database).
while :; do
  n=$("$BIN" sync status --leader "$SITE" | awk -F'|' '/ readings /{gsub(/ /,"",$6); print $6}')
  [ "${n:-0}" -ge "$ROWS" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
printf 'synced %d rows in %.1f s: %.0f rows/s (site to upstream, batches of %d)\n' "$ROWS" "$secs" "$(echo "$ROWS / $secs" | bc -l)" "$BATCH"
CHECK="SELECT COUNT(*), MIN(id), MAX(id), SUM(id % 1000003), SUM(client) FROM readings"
site_sum=$(scalar "$SITE" "$CHECK")
up_sum=$(scalar "$UP" "$CHECK")
echo "site (count, min, max, sum of id mod p, sum of client): $site_sum"
echo "upstream (same):                                      $up_sum"
[ "$site_sum" = "$up_sum" ] && echo "identical: no row lost or doubled" || { echo "MISMATCH"; exit 1; }
