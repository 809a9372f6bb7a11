#!/usr/bin/env bash
# Makes sure Debian's Chromium and chromedriver are installed for the
# browser tests (they are never skipped).
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version
