#!/usr/bin/env bash
# Builds liveview/assets/liveview.min.js, the client that pages load by
# default, from the readable liveview/assets/liveview.js with a pinned
# terser, so the output is the same on every machine.
#   scripts/build-client.sh           write liveview.min.js
#   scripts/build-client.sh --check   fail if the committed liveview.min.js
#                                     is not what liveview.js builds to
set -euo pipefail
cd "$(dirname "$0")/.."

TERSER_VERSION="5.51.4"
SRC="liveview/assets/liveview.js"
OUT="liveview/assets/liveview.min.js"
PREAMBLE="/*! LiveView for Rust: browser client, minified from liveview.js (same directory). */"

# The upload add-on (liveview-upload.js) is minified the same way.
UPLOAD_SRC="liveview/assets/liveview-upload.js"
UPLOAD_OUT="liveview/assets/liveview-upload.min.js"
UPLOAD_PREAMBLE="/*! LiveView for Rust: upload add-on, minified from liveview-upload.js (same directory). */"

minify() { # SRC PREAMBLE OUT
    local body
    body="$(npx --yes "terser@${TERSER_VERSION}" "$1" \
        --ecma 2020 --compress passes=2 --mangle --comments false)"
    printf '%s\n%s\n' "$2" "$body" >"$3"
}

build() {
    minify "$SRC" "$PREAMBLE" "$1"
}

case "${1:-}" in
    --check)
        tmp="$(mktemp)"
        trap 'rm -f "$tmp"' EXIT
        build "$tmp"
        if ! cmp -s "$tmp" "$OUT"; then
            echo "$OUT is stale: run scripts/build-client.sh and commit it" >&2
            exit 1
        fi
        minify "$UPLOAD_SRC" "$UPLOAD_PREAMBLE" "$tmp"
        if ! cmp -s "$tmp" "$UPLOAD_OUT"; then
            echo "$UPLOAD_OUT is stale: run scripts/build-client.sh and commit it" >&2
            exit 1
        fi
        ;;
    "")
        build "$OUT"
        minify "$UPLOAD_SRC" "$UPLOAD_PREAMBLE" "$UPLOAD_OUT"
        ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac
raw=$(wc -c <"$OUT")
gz=$(gzip -9 -n -c "$OUT" | wc -c)
echo "$OUT: $raw bytes, $gz gzipped (budget: 10240)"
if [ "$gz" -ge 10240 ]; then
    echo "the client is over its size budget of 10 KiB gzipped" >&2
    exit 1
fi
