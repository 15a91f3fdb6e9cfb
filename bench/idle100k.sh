#!/usr/bin/env bash
# idle100k.sh — 100,000 idle members of one room, nexio as it is deployed
# at that size: several server processes on one Redis (hub/redisbroker).
#
#   bash bench/idle100k.sh                       100,000 members, 8 servers × 12,500
#   MEMBERS=20000 PROCS=2 bash bench/idle100k.sh
#   IMPL=nexio-detach bash bench/idle100k.sh     members detached with Conn.Detach
#
# Starts a private redis-server (no persistence) on a free loopback port,
# runs `nexiobench idle100k` (bench/cmd/nexiobench/idle100k.go says what
# it measures), prints its Markdown section, keeps it in
# results/idle100k-$IMPL.md (run.sh puts it in docs/benchmarks.md) and appends
# the raw line to results/<UTC date>-idle100k.txt. Bounded by TIMEOUT
# (default 10m); the servers and client processes die with it, Redis is
# stopped on exit. Not part of `make bench`: it takes a few minutes and
# ~8 GiB of memory.
set -euo pipefail
cd "$(dirname "$0")"
members=${MEMBERS:-100000}
procs=${PROCS:-8}
impl=${IMPL:-nexio}
msgs=${MSGS:-50}
timeout=${TIMEOUT:-10m}

mkdir -p bin results
go build -o bin/nexiobench ./cmd/nexiobench

port=""
for p in $(seq 26400 26499); do
	if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "no free port in 26400-26499 for redis-server" >&2; exit 1; }
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
	--dir "$redis_dir" --logfile "$redis_dir/redis.log" &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 50); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.1
done

cmd="bash bench/idle100k.sh"
if [ "$members" != 100000 ] || [ "$procs" != 8 ]; then
	cmd="MEMBERS=$members PROCS=$procs $cmd"
fi
if [ "$impl" != nexio ]; then
	cmd="IMPL=$impl $cmd"
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
section=$(mktemp)
log=$(mktemp)
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$redis_dir" "$section" "$log"' EXIT
# The section goes to $section; the progress and the raw line (stderr)
# to the terminal and $log.
timeout --kill-after=10s "$timeout" ./bin/nexiobench idle100k -impl "$impl" -members "$members" -procs "$procs" \
	-msgs "$msgs" -redis "127.0.0.1:$port" -timeout "$timeout" -cmd "$cmd" 2>&1 >"$section" | tee "$log" >&2
{
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $cmd; load before $load, after $(cut -d' ' -f1-3 /proc/loadavg); $(go version); $(nproc) cores"
	grep '^impl=.* workload=idle100k' "$log" || true
} >>"results/$(date -u +%Y-%m-%d)-idle100k.txt"
cp "$section" "results/idle100k-$impl.md"
echo
cat "$section"
