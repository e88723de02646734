#!/usr/bin/env bash
# Builds a static chronos binary (glibc, crt-static; the size-optimised
# `dist` profile) and the FROM-scratch
# image around it, tagged chronos:latest (or $IMAGE).
#   docker/build-image.sh            # amd64
#   ARCH=arm64 docker/build-image.sh # arm64 (needs ../shared/cross set up, binfmt for qemu-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-amd64}
IMAGE=${IMAGE:-chronos:latest}
case "$ARCH" in
  amd64) TARGET=x86_64-unknown-linux-gnu ;;
  arm64) TARGET=aarch64-unknown-linux-gnu; . ../shared/cross/env.sh ;;
  *) echo "ARCH must be amd64 or arm64" >&2; exit 2 ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-target}
RUSTFLAGS="-C target-feature=+crt-static" cargo build --profile dist --target "$TARGET"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$TARGET_DIR/$TARGET/dist/chronos" "$context/chronos"
mkdir "$context/data"
cp docker/Dockerfile "$context/"
DOCKER_BUILDKIT=0 docker build --platform "linux/$ARCH" -t "$IMAGE" "$context"
echo "built $IMAGE ($ARCH): $(du -h "$context/chronos" | cut -f1) binary"
