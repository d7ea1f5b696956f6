#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is at /usr/bin/chromium.
#
# The HTML report test (tests/integration/test_html_report_browser.py) opens the
# report in it and fails, rather than skips, when it is missing; this script is
# the fix that failure names. Idempotent: exits 0 at once when the binary is there.
# Installs Debian's package with apt-get as root (or password-less sudo): CI
# reaches Debian's archive but no browser vendor's downloads, so tools that fetch
# their own browser build (playwright, puppeteer) cannot be used here.
set -euo pipefail

CHROMIUM="${CLNRM_CHROMIUM:-/usr/bin/chromium}"
say() { echo "ensure-chromium: $*"; }

if [ -x "$CHROMIUM" ]; then
    say "$("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") is installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    AS_ROOT=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT=(sudo -n)
else
    say "$CHROMIUM is missing and installing it needs root (no root, no password-less sudo)"
    say "run 'sudo apt-get install -y chromium' yourself, then retry"
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    say "$CHROMIUM is missing and apt-get is not available; install Chromium yourself"
    exit 1
fi

say "installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${AS_ROOT[@]}" apt-get update -qq
"${AS_ROOT[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    say "apt-get finished but $CHROMIUM is still missing"
    exit 1
fi
say "$("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") installed"
