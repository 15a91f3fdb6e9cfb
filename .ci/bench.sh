#!/usr/bin/env bash
# make bench: the in-module micro-benchmarks, then the side-by-side peers
# benchmark of the bench/ module when present.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" ./...
if [ -x bench/run.sh ]; then
  bench/run.sh
fi
