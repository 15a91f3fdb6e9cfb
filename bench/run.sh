#!/usr/bin/env bash
# run.sh — the side-by-side benchmark behind `make bench`.
#
#   bash bench/run.sh          quick plan: 1.5 s phases, 3 passes (< ~5 min on 2 cores)
#   bash bench/run.sh full     5 s phases, 5 passes, adds 10,000 members
#
# Builds nexiobench, runs every workload for every implementation (a fresh
# server process per run, implementations interleaved), appends the raw
# result lines to bench/results/<UTC date>.txt, and regenerates
# docs/benchmarks.md and docs/benchmarks-fanout.svg from this run's lines.
# Everything runs on 127.0.0.1 and every phase is bounded in time.
set -euo pipefail

mode=${1:-quick}
case "$mode" in
quick) runflags=(-quick -passes "${PASSES:-3}") ;;
full) runflags=(-passes "${PASSES:-5}") ;;
*)
	echo "usage: $0 [quick|full]" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")"
mkdir -p bin results ../docs
go build -o bin/nexiobench ./cmd/nexiobench

stamp=$(date -u +%Y-%m-%d)
results="results/$stamp.txt"
run=$(mktemp)
trap 'rm -f "$run"' EXIT

# Header lines (starting with #) say when and how; the report skips them.
{
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) bash bench/run.sh $mode; $(go version); $(nproc) cores"
} >>"$results"

status=0
./bin/nexiobench run "${runflags[@]}" ${IMPLS:+-impls "$IMPLS"} | tee "$run" || status=$?
cat "$run" >>"$results"

./bin/nexiobench report -in "$run" \
	-md ../docs/benchmarks.md -svg ../docs/benchmarks-fanout.svg \
	-results "bench/$results" -cmd "make bench ($mode: bash bench/run.sh $mode)"
echo "wrote docs/benchmarks.md, docs/benchmarks-fanout.svg; raw lines appended to bench/$results" >&2
exit "$status"
