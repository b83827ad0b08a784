#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/browser/, driven by Playwright with
# executable_path=/usr/bin/chromium: `npx playwright install` cannot download browsers here).
# Idempotent: returns at once when /usr/bin/chromium exists.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[browser] installing chromium from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "[browser] ERROR: $CHROMIUM missing. Install with: sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 1
fi
