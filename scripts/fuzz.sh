#!/usr/bin/env bash
# Fuzzes the frame decoder and key normalisation for a bounded time each
# (default 60 s) with cargo-fuzz on the nightly toolchain. Not part of CI; a
# crash it finds becomes a regular regression test in
# liveview/src/call/protocol.rs or liveview/src/call/content/keys.rs.
#   scripts/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode normalise)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in "${targets[@]}"; do
  case "$target" in
    # Whole frames of many keys: up to the 64 KiB frame limit.
    normalise) max_len=65536 ;;
    *) max_len=4096 ;;
  esac
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len="$max_len"
done
