#!/usr/bin/env bash
# make lint: formatting, vet, and staticcheck when it can be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l . | grep -v '^bench/vendor/' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
go vet ./...
(cd bench && go vet ./...)
if go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -version >/dev/null 2>&1; then
  go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
else
  echo "staticcheck could not be installed here; skipped"
fi
