#!/usr/bin/env bash
# Builds chronos .debs for amd64 (rustup's toolchain), arm64 and armhf
# (Debian's Rust from ../shared/cross, which must have been set up with
# ../shared/cross/setup.sh). Needs cargo-deb (`cargo install --locked cargo-deb`).
#   packaging/build-debs.sh [amd64] [arm64] [armhf]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET_DIR/debian}
mkdir -p "$OUT"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64 armhf)
for arch in "${arches[@]}"; do
  case "$arch" in
    amd64)
      ( . packaging/dist-env.sh
        cargo build --profile dist
        cargo deb --profile dist --no-build --output "$OUT" ) ;;
    arm64|armhf)
      target=aarch64-unknown-linux-gnu
      [ "$arch" = armhf ] && target=armv7-unknown-linux-gnueabihf
      ( . ../shared/cross/env.sh
        cargo build --profile dist --target "$target"
        cargo deb --profile dist --target "$target" --no-build --output "$OUT" ) ;;
    *) echo "unknown architecture '$arch' (amd64, arm64, armhf)" >&2; exit 2 ;;
  esac
done
for deb in "$OUT"/chronos_*.deb; do
  size=$(dpkg-deb -c "$deb" | awk '$6 == "./usr/bin/chronos" { print $3 }')
  printf '%s  Architecture: %s  Depends: %s  /usr/bin/chronos: %s bytes\n' "$deb" \
    "$(dpkg-deb -f "$deb" Architecture)" "$(dpkg-deb -f "$deb" Depends)" "$size"
done
