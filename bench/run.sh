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

# Cross-node broadcasts through hub/redisbroker (needs Redis; the Go
# benchmark lives beside the broker). Appended to the same report.
redis_out=$(mktemp)
trap 'rm -f "$run" "$redis_out"' EXIT
if (cd .. && go test -run '^$' -bench 'CrossNode|BrokerHop' -benchtime=2000x ./hub/redisbroker/) >"$redis_out" 2>&1; then
	{
		echo
		echo "## Across nodes: hub/redisbroker on Redis"
		echo
		echo "Two hubs (nodes A and B) on one Redis over loopback, 500 WebSocket members each in one room; node A broadcasts 128-byte messages and all 1,000 members read them. \`window=1\` sends the next broadcast once every member read the last (latency); \`window=64\` keeps 64 in flight (throughput). \`p50-µs\`/\`p99-µs\`: from Broadcast to a member of B reading it; \`local-\`: the same on A. The clients, both nodes and Redis share the 2 cores, so these are floors."
		echo
		echo "Command: \`go test -run '^\$' -bench 'CrossNode|BrokerHop' -benchtime=2000x ./hub/redisbroker/\` ($(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg))"
		echo
		echo '```'
		grep -E '^(Benchmark|goos|goarch|cpu)' "$redis_out"
		echo '```'
	} >>../docs/benchmarks.md
	grep -E '^Benchmark' "$redis_out" | sed 's/^/# redis: /' >>"$results"
else
	echo "cross-node benchmark skipped or failed (is Redis on 127.0.0.1:6379?):" >&2
	tail -5 "$redis_out" >&2
fi
# The same through hub/natsbroker (needs NATS with JetStream).
nats_out=$(mktemp)
trap 'rm -f "$run" "$redis_out" "$nats_out"' EXIT
if (cd .. && go test -run '^$' -bench 'CrossNode|BrokerHop' -benchtime=2000x ./hub/natsbroker/) >"$nats_out" 2>&1; then
	{
		echo
		echo "## Across nodes: hub/natsbroker on NATS"
		echo
		echo "The same on NATS: two hubs on one nats-server with JetStream over loopback. \`BrokerHop/append\` is the path of a room with history (a JetStream write, then the live message)."
		echo
		echo "Command: \`go test -run '^\$' -bench 'CrossNode|BrokerHop' -benchtime=2000x ./hub/natsbroker/\` ($(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg))"
		echo
		echo '```'
		grep -E '^(Benchmark|goos|goarch|cpu)' "$nats_out"
		echo '```'
	} >>../docs/benchmarks.md
	grep -E '^Benchmark' "$nats_out" | sed 's/^/# nats: /' >>"$results"
else
	echo "NATS cross-node benchmark skipped or failed (is NATS with JetStream on 127.0.0.1:4222?):" >&2
	tail -5 "$nats_out" >&2
fi
# The cost of history in memory (hub): fanout with history off and on.
hist_out=$(mktemp)
trap 'rm -f "$run" "$redis_out" "$nats_out" "$hist_out"' EXIT
if (cd .. && go test -run '^$' -bench FanoutHistory -benchtime 2000x -count 3 ./hub/) >"$hist_out" 2>&1; then
	{
		echo
		echo "## The cost of history (in memory)"
		echo
		echo "\`BenchmarkFanoutHistory\`: 1,000 members of one room in process, 128-byte messages, window 32, with \`Options.History\` off and on (memory, 1,000 kept). \`deliveries/s\`: the target is on ≥ 0.9× off."
		echo
		echo "Command: \`go test -run '^\$' -bench FanoutHistory -benchtime 2000x -count 3 ./hub/\` ($(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg))"
		echo
		echo '```'
		grep -E '^Benchmark' "$hist_out"
		echo '```'
	} >>../docs/benchmarks.md
	grep -E '^Benchmark' "$hist_out" | sed 's/^/# history: /' >>"$results"
else
	echo "history benchmark failed:" >&2
	tail -5 "$hist_out" >&2
fi
# The reconnect storm takes minutes per implementation: bench/storm.sh
# runs it and writes docs/benchmarks-storm.md; the report links it.
{
	echo
	echo "## Reconnect storm (recovery after a blink)"
	echo
	echo "nexio, centrifuge and Socket.IO recovering 5,000 members that missed 10,000 messages: [benchmarks-storm.md](benchmarks-storm.md) (\`bash bench/storm.sh\`, not part of \`make bench\`: it takes about 15 minutes)."
} >>../docs/benchmarks.md
# The 100,000-member run takes minutes and gigabytes: bench/idle100k.sh
# runs it and keeps its section per implementation, included here as
# last measured.
for f in results/idle100k-nexio.md results/idle100k-nexio-detach.md; do
	if [ -f "$f" ]; then
		{ echo; cat "$f"; } >>../docs/benchmarks.md
	fi
done
# The cost of the observability middleware (wsmw/wsmetrics, wsmw/wsotel),
# appended to the same report.
if obs=$(bash observability.sh); then
	{ echo; echo "$obs"; } >>../docs/benchmarks.md
else
	echo "observability benchmark failed" >&2
	status=1
fi
# The hand-written analysis (profiles, why a target is missed, what was
# tried) lives in analysis.md and closes the report.
{ echo; sed 1,2d analysis.md; } >>../docs/benchmarks.md
exit "$status"
