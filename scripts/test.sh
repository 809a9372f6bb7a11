#!/usr/bin/env bash
# Runs every check and test of the project, exactly as CI does.
# Provides what the tests need: a Redis server, Chromium and chromedriver;
# the fuzzing step installs cargo-fuzz (on the nightly toolchain) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "services"
scripts/ensure-redis.sh
scripts/ensure-chromium.sh
# The upload tests' S3-compatible server (each test starts its own).
command -v moto_server >/dev/null 2>&1 || python3 -m pip install --quiet 'moto[server]'

log "browser client (minified build up to date, within its size budget)"
scripts/build-client.sh --check

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

log "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

log "benchmark harness, smoke mode (functional checks only, no timing)"
cargo run --quiet -p liveview-bench -- smoke

log "doc tests (the guide's code blocks included)"
cargo test --workspace --all-features --doc --quiet

log "guide"
command -v mdbook >/dev/null 2>&1 || cargo install mdbook --locked --version 0.5.4
mdbook build docs

log "tests (the soak in its full mode: 60 s measured after two warm-up rounds)"
LIVEVIEW_SOAK_SECS=60 cargo nextest run --workspace --all-features --no-fail-fast --failure-output final

log "fuzzing (every target in fuzz/fuzz_targets, 60 s in all)"
scripts/fuzz.sh 60
