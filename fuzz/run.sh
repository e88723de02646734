#!/usr/bin/env bash
# Runs the fuzz targets with cargo-fuzz (libFuzzer + AddressSanitizer).
#   fuzz/run.sh [--dev] [SECONDS] [TARGET...]     default: 60 s each, every target
# --dev builds without optimisations (in half the time; for a quick look).
# `cargo test` replays each target's check (fuzz/checks/) over seeds and
# mutations without this build (tests/it/fuzz_replay.rs).
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take the
# sanitizer flags cargo-fuzz passes. Installs cargo-fuzz if it is missing.
# Crashes land in fuzz/artifacts/<target>/; the corpus grows in
# fuzz/corpus/<target>/ (seeded with the SQL logic tests' statements).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=-O
if [ "${1:-}" = --dev ]; then
    mode=--dev
    shift
fi
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(sql_parser codecs log_entries snapshot grpc_requests)
fi
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# The SQL parser starts from every statement the SQL logic tests hold.
seeds=fuzz/corpus/sql_parser
if [ ! -d "$seeds" ]; then
    mkdir -p "$seeds"
    n=0
    for f in tests/slt/*.slt; do
        awk 'BEGIN{RS=""} /^(statement|query)/ { sub(/^[^\n]*\n/, ""); sub(/\n----.*/, ""); print > (dir "/" base "_" NR) }' dir="$seeds" base="$(basename "$f" .slt)" "$f"
        n=$((n + 1))
    done
fi
cargo fuzz build "$mode"
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== $t: ${seconds}s"
    cargo fuzz run "$mode" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 |
        grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
    if ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/timeout-* "fuzz/artifacts/$t"/oom-* >/dev/null 2>&1; then
        echo "== $t: FAILED, see fuzz/artifacts/$t/"
        exit 1
    fi
    echo "== $t: ok"
done
