#!/usr/bin/env bash
# Tests a chronos .deb: its metadata and contents, the systemd unit
# (systemd-analyze verify), and an install into a throw-away Debian root
# made with debootstrap (user, files, conffile, unit enabled; data kept on
# remove and deleted on purge). Needs root, debootstrap and network access
# to the Debian mirror.
#   packaging/test-deb.sh [target/debian/chronos_*_amd64.deb]
#   SKIP_INSTALL=1 packaging/test-deb.sh target/debian/chronos_*_arm64.deb   (metadata and unit only)
#   OLD_DEB=chronos_0.1.0-1_amd64.deb packaging/test-deb.sh NEW.deb   (also: rows written by the
#       old package's node survive the upgrade to NEW; needs 127.0.0.1:8000 free)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
deb=${1:-$(ls "$TARGET_DIR"/debian/chronos_*_amd64.deb | tail -n 1)}
ROOT=${ROOT:-/var/tmp/chronos-deb-root}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "metadata of $deb"
dpkg-deb -I "$deb"
[ "$(dpkg-deb -f "$deb" Package)" = chronos ] || fail "package name"
case "$(dpkg-deb -f "$deb" Depends)" in *:arm*|*:amd64*) fail "architecture-qualified Depends";; esac

step "contents"
contents=$(dpkg-deb -c "$deb")
echo "$contents"
for f in ./usr/bin/chronos ./etc/chronos/chronos.toml ./usr/share/doc/chronos/chronos.toml.example; do
  grep -q " $f\$" <<<"$contents" || fail "missing $f"
done
unit=$(grep -o '\./[a-z/]*systemd/system/chronos.service' <<<"$contents" | head -n 1)
[ -n "$unit" ] || fail "missing the systemd unit"
control=$(mktemp -d); trap 'rm -rf "$control"' EXIT
dpkg-deb -e "$deb" "$control"
grep -qx /etc/chronos/chronos.toml "$control/conffiles" || fail "chronos.toml is not a conffile"
for s in postinst prerm postrm; do [ -x "$control/$s" ] || fail "no $s"; done

step "systemd-analyze verify"
extract=$(mktemp -d)
dpkg-deb -x "$deb" "$extract"
# verify resolves ExecStart= against the host, so the binary is put where
# the unit expects it for the duration of the check.
cleanup_bin=
if [ ! -e /usr/bin/chronos ]; then cp "$extract/usr/bin/chronos" /usr/bin/chronos; cleanup_bin=1; fi
systemd-analyze verify "$extract/${unit#./}" || { [ -n "$cleanup_bin" ] && rm -f /usr/bin/chronos; fail "systemd-analyze verify"; }
[ -n "$cleanup_bin" ] && rm -f /usr/bin/chronos
rm -rf "$extract"
echo "unit verifies"

if [ -n "${SKIP_INSTALL:-}" ]; then
  echo "PASS (install skipped: a $(dpkg-deb -f "$deb" Architecture) package does not install into this machine's root)"
  exit 0
fi

step "install into a throw-away root ($ROOT)"
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  rm -rf "$ROOT"
  debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >/dev/null
fi
cp "$deb" "$ROOT/tmp/chronos.deb"
mount -t proc proc "$ROOT/proc" 2>/dev/null || true
trap 'umount "$ROOT/proc" 2>/dev/null || true; rm -rf "$control"' EXIT
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/chronos.deb >/dev/null
chroot "$ROOT" getent passwd chronos >/dev/null || fail "no chronos user"
chroot "$ROOT" test -x /usr/bin/chronos || fail "no /usr/bin/chronos"
chroot "$ROOT" /usr/bin/chronos version
conffiles=$(chroot "$ROOT" dpkg-query -W -f='${Conffiles}\n' chronos)
grep -q /etc/chronos/chronos.toml <<<"$conffiles" || fail "conffile not registered"
ls "$ROOT"/etc/systemd/system/multi-user.target.wants/chronos.service >/dev/null || fail "unit not enabled"
echo "user, binary, conffile and enabled unit are in place"

if [ -n "${OLD_DEB:-}" ]; then
  step "upgrade from $(dpkg-deb -f "$OLD_DEB" Version) to $(dpkg-deb -f "$deb" Version) keeps the data"
  # The old package writes rows through a real node; the new one must find
  # them all after an ordinary upgrade (its node converts the directory).
  if (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then fail "127.0.0.1:8000 is taken; the node in $ROOT needs it"; fi
  chroot "$ROOT" dpkg -P chronos >/dev/null
  cp "$OLD_DEB" "$ROOT/tmp/chronos-old.deb"
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/chronos-old.deb >/dev/null
  log="$ROOT/tmp/node.log"; : >"$log"
  node_pid=
  start_node() { # as the service runs it: the chronos user, the packaged config, and
    # the state directory that systemd's StateDirectory= would make (no systemd runs here)
    chroot "$ROOT" install -d -o chronos -g chronos -m 0750 /var/lib/chronos
    chroot "$ROOT" setpriv --reuid=chronos --regid=chronos --clear-groups \
      /usr/bin/chronos node --config /etc/chronos/chronos.toml >>"$log" 2>&1 &
    node_pid=$!
    for _ in $(seq 100); do
      chroot "$ROOT" /usr/bin/chronos client -e "SELECT 1" >/dev/null 2>&1 && return 0
      sleep 0.2
    done
    cat "$log"; fail "the node did not start"
  }
  stop_node() { kill -TERM "$node_pid"; wait "$node_pid" || true; }
  sql() { chroot "$ROOT" /usr/bin/chronos client --format csv -e "$1" | tail -n 1; }
  start_node
  sql "CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, value DOUBLE)" >/dev/null
  sql "CREATE INDEX by_sensor ON readings (sensor)" >/dev/null
  for chunk in 0 1 2 3 4; do
    values=$(seq $((chunk * 1000)) $((chunk * 1000 + 999)) | awk '{ printf "%s(%d, '\''s%d'\'', %d.5)", (NR > 1 ? "," : ""), $1, $1 % 10, $1 }')
    sql "INSERT INTO readings VALUES $values" >/dev/null
  done
  before=$(sql "SELECT count(*), sum(value), count(DISTINCT sensor) FROM readings")
  stop_node
  echo "written by $(chroot "$ROOT" /usr/bin/chronos version): $before"
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/chronos.deb >/dev/null
  [ "$(chroot "$ROOT" dpkg-query -W -f='${Version}' chronos)" = "$(dpkg-deb -f "$deb" Version)" ] || fail "the upgrade did not install"
  start_node
  after=$(sql "SELECT count(*), sum(value), count(DISTINCT sensor) FROM readings")
  by_index=$(sql "SELECT count(*) FROM readings WHERE sensor = 's7'")
  sql "INSERT INTO readings VALUES (5000, 's0', 1.0)" >/dev/null
  stop_node
  start_node
  total=$(sql "SELECT count(*) FROM readings")
  stop_node
  echo "read by $(chroot "$ROOT" /usr/bin/chronos version): $after; s7 by index: $by_index; after a write and a restart: $total rows"
  [ "$after" = "$before" ] || fail "the upgrade changed the data: $before -> $after"
  [ "$by_index" = 500 ] || fail "the index found $by_index rows of s7, not 500"
  [ "$total" = 5001 ] || fail "$total rows after a write and a restart, not 5001"
  grep -m 3 "convert" "$log" || true
fi

step "remove keeps data, purge deletes it"
mkdir -p "$ROOT/var/lib/chronos/node1" && touch "$ROOT/var/lib/chronos/node1/marker"
chroot "$ROOT" dpkg -r chronos >/dev/null
[ -e "$ROOT/var/lib/chronos/node1/marker" ] || fail "remove deleted the data"
[ -e "$ROOT/etc/chronos/chronos.toml" ] || fail "remove deleted the conffile"
chroot "$ROOT" dpkg -P chronos >/dev/null
[ ! -e "$ROOT/var/lib/chronos" ] || fail "purge kept the data"
echo "PASS"
