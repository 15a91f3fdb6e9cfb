#!/usr/bin/env bash
# make bench: the layer's micro-benchmarks (wsroute next to raw
# coder/websocket, the hub's enqueue cost), then the side-by-side peers
# benchmark of the bench/ module, which writes docs/benchmarks.md.
# BENCH_MICRO=0 skips the first part. Every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BENCH_MICRO:-1}" != 0 ]; then
  go test -run '^$' -bench . -benchmem -benchtime 100000x ./wsroute/
  go test -run '^$' -bench . -benchmem -benchtime 500x ./hub/
fi
bash bench/run.sh "${BENCH_MODE:-quick}"
