#!/usr/bin/env bash
# Re-makes docs/screenshots/*.png (the chat page's main states) in headless Chromium against the
# LibreChat double, like the browser tests (tests/browser/screenshots.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-frontend.sh
bash scripts/install-browser.sh
exec .venv/bin/python -m pytest tests/browser/screenshots.py -q "$@"
