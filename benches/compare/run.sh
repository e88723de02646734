#!/usr/bin/env bash
# ChronosDB side by side with etcd (3 members) and local SQLite, on this
# machine, in one run: installs what it needs from Debian, builds in
# release, runs every workload (benches/compare/src/main.rs), prints one
# markdown table and appends it to docs/performance.md.
#
#   benches/compare/run.sh              # 10 s per workload, about 5 minutes
#   SECONDS_EACH=30 benches/compare/run.sh
#   COMPARE_DIR=/mnt/ssd/x benches/compare/run.sh   # data on another disk
#
# Every server's data lives under one directory on one disk, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v protoc >/dev/null || need+=(protobuf-compiler)   # etcd-client's build script
command -v strip >/dev/null || need+=(binutils)
if ((${#need[@]})); then
    echo "== installing ${need[*]} from Debian"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== building (release, and the packaged dist profile for its size)"
cargo build --release --bin chronos
( . packaging/dist-env.sh; cargo build --profile dist --bin chronos )
cargo build --release --manifest-path benches/compare/Cargo.toml
target=${CARGO_TARGET_DIR:-$root/target}
compare_target=${CARGO_TARGET_DIR:-$root/benches/compare/target}

work=${COMPARE_DIR:-$(mktemp -d /var/tmp/chronos-compare.XXXXXX)}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
fs=$(df -T "$work" | awk 'NR==2 {print $2 " on " $1}')
export COMPARE_HEADING="$(date -u +%Y-%m-%d) · $(nproc) cores, $cpu · $(uname -r) · data on $fs · \
$(etcd --version | head -1) · ChronosDB $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== $COMPARE_HEADING"

"$compare_target/release/chronos-compare" \
    --chronos "$target/release/chronos" \
    --etcd "$(command -v etcd)" \
    --dir "$work" \
    --seconds "${SECONDS_EACH:-10}" \
    --packaged "$target/dist/chronos" \
    --out docs/performance.md
