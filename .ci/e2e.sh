#!/usr/bin/env bash
# make e2e: the browser end-to-end test (example/e2e), in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d example/e2e ]; then
  echo "no browser end-to-end test yet (example/e2e)"; exit 0
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed: apt-get install chromium"; exit 1
  fi
fi
cd example/e2e && go test -count=1 -timeout 10m -v ./...
