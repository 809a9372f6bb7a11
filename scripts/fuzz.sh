#!/usr/bin/env bash
# Fuzzes the targets in fuzz/fuzz_targets/ (all of them unless named) with
# cargo-fuzz on the nightly toolchain, for a bounded time shared between
# them (default 60 s in all, at least 10 s each). CI runs it from
# scripts/test.sh; a crash fails the run, is saved under
# fuzz/artifacts/TARGET/, and becomes a regular regression test next to the
# code it broke (liveview/src/call/protocol.rs, liveview/src/call/content/).
#   scripts/fuzz.sh [total-seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
total="${1:-60}"
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    for file in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets in fuzz/fuzz_targets" >&2
    exit 1
fi
each=$((total / ${#targets[@]}))
[ "$each" -ge 10 ] || each=10

# Built once, before the clock of any target starts.
cargo +nightly fuzz build
for target in "${targets[@]}"; do
    case "$target" in
        # Whole frames of many keys: up to the 64 KiB frame limit.
        normalise) max_len=65536 ;;
        *) max_len=4096 ;;
    esac
    echo "fuzzing $target for ${each} s"
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$each" -max_len="$max_len" -print_final_stats=1
done
