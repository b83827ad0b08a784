#!/usr/bin/env bash
# Installs the chat UI's browser libraries (frontend/package.json, pinned by its lock file) with
# `npm ci` and copies their distribution files to frontend/vendor/ (git-ignored; served as
# /static/vendor/ through STATICFILES_DIRS). Nothing minified is committed: see docs/decisions.md.
# Idempotent: when the lock file and this script are unchanged it only checks and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

FRONTEND=frontend
VENDOR="$FRONTEND/vendor"
MODULES="$FRONTEND/node_modules"
STAMP="$VENDOR/.installed"

say() { echo "[frontend] $*"; }
die() { echo "[frontend] ERROR: $*" >&2; exit 1; }

stamp_value() { cat "$0" "$FRONTEND/package.json" "$FRONTEND/package-lock.json" | sha256sum | cut -d' ' -f1; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ]; then
  exit 0
fi

if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing npm from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    die "npm missing. Install with: sudo apt-get update && sudo apt-get install -y npm"
  fi
fi

say "npm ci in $FRONTEND/"
npm ci --prefix "$FRONTEND" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

rm -rf "$VENDOR"
mkdir -p "$VENDOR/marked" "$VENDOR/dompurify" "$VENDOR/highlight"
# ES modules, with the source maps their last line names (ManifestStaticFilesStorage checks
# that every referenced file exists). `.mjs` is renamed: some servers do not serve it as JS.
cp "$MODULES/marked/lib/marked.esm.js" "$MODULES/marked/lib/marked.esm.js.map" \
   "$MODULES/marked/LICENSE" "$VENDOR/marked/"
cp "$MODULES/dompurify/dist/purify.es.mjs" "$VENDOR/dompurify/purify.es.js"
cp "$MODULES/dompurify/dist/purify.es.mjs.map" "$MODULES/dompurify/LICENSE" "$VENDOR/dompurify/"
cp "$MODULES/@highlightjs/cdn-assets/es/highlight.min.js" \
   "$MODULES/@highlightjs/cdn-assets/styles/github.min.css" \
   "$MODULES/@highlightjs/cdn-assets/LICENSE" "$VENDOR/highlight/"
stamp_value > "$STAMP"
say "vendor files in $VENDOR/"
