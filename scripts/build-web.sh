#!/usr/bin/env bash
# Builds the web UI (web/ -> web/dist) for `make build`: `npm ci` from the
# npm registry (its cache first) when package-lock.json changed, then vite
# and the .gz copies vireod serves, when a source is newer than the build.
set -euo pipefail
cd "$(dirname "$0")/../web"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --prefer-offline
fi
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.js package-lock.json scripts \
                                         -newer dist/index.html -print -quit)" ]; then
    npm run build --silent
fi
