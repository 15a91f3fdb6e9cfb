#!/usr/bin/env bash
# instr.sh — user-space instructions the server spends per operation,
# counted by valgrind's callgrind: a figure that, unlike CPU time, does
# not move with the machine's load, for comparing revisions of nexio with
# each other and with the peers. System calls are not in it (the kernel's
# share of an echo or a handshake is the same for every implementation).
#
#   bash bench/instr.sh BIN IMPL N1 N2 "CLIENT FLAGS"
#   bash bench/instr.sh /tmp/nb.nocgo nexio 200 1000 "-workload handshakes -clients 2"
#   bash bench/instr.sh /tmp/nb.nocgo gws 1000 5000 "-workload echo -clients 2"
#
# BIN must be built with CGO_ENABLED=0 (`CGO_ENABLED=0 go build -o OUT
# ./cmd/nexiobench`): valgrind does not run Go's cgo start-up. N1 and N2
# bound the operations per client (-msgs); the result is
# (instructions after N2 - instructions after N1) / (ops2 - ops1), which
# leaves out the server's start-up. The server runs without asynchronous
# preemption and RDTSCP, which callgrind cannot follow; a run that
# valgrind aborts anyway is retried.
set -uo pipefail
[ $# -eq 5 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
bin=$1 impl=$2 n1=$3 n2=$4 flags=$5
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind" >&2; exit 1; }

run() { # N: prints "OPS IR", or nothing if valgrind gave up
	local out fifo addr spid line ir ops
	out=$(mktemp -d)
	fifo=$out/fifo
	mkfifo "$fifo"
	GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
		--cache-sim=no --branch-sim=no "$bin" server -impl "$impl" -addr 127.0.0.1:0 -maxlife 10m >"$fifo" 2>"$out/vg.err" &
	spid=$!
	read -r _ addr <"$fifo"
	if [ -n "$addr" ]; then
		# shellcheck disable=SC2086 # flags are words on purpose
		line=$("$bin" client -addr "$addr" -impl "$impl" -timeout 5m -duration 4m -msgs "$1" $flags)
		callgrind_control -d "$spid" >/dev/null 2>&1
		sleep 0.3
	fi
	kill -9 "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	ir=$(cat "$out"/cg.out.* 2>/dev/null | grep -E '^(summary|totals):' | head -1 | awk '{print $2}')
	ops=$(echo "${line:-}" | grep -oE '(conns|msgs)=[0-9]+' | head -1 | cut -d= -f2)
	rm -rf "$out"
	[ -n "$ir" ] && [ -n "$ops" ] && echo "$ops $ir"
}
get() {
	local r
	for _ in 1 2 3 4; do
		r=$(run "$1") && [ -n "$r" ] && { echo "$r"; return; }
	done
	echo "instr.sh: valgrind failed four times" >&2
	exit 1
}
read -r o1 i1 < <(get "$n1")
read -r o2 i2 < <(get "$n2")
awk -v o1="$o1" -v i1="$i1" -v o2="$o2" -v i2="$i2" -v impl="$impl" -v bin="$bin" -v f="$flags" \
	'BEGIN { printf "impl=%s bin=%s flags=\"%s\" ops=%d..%d instructions_per_op=%.0f\n", impl, bin, f, o1, o2, (i2-i1)/(o2-o1) }'
