#!/usr/bin/env bash
# Fuzzes the frame decoder for a bounded time (default 60 s) with cargo-fuzz
# on the nightly toolchain. Not part of CI; a crash it finds becomes a
# regular regression test in liveview/src/call/protocol.rs.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz run decode -- -max_total_time="$seconds" -max_len=4096
