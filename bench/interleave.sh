#!/usr/bin/env bash
# interleave.sh — one workload, several builds or implementations, in
# alternating rounds: the way to compare two revisions of nexio with each
# other and with gws or raw coder on a machine whose load moves.
#
#   bash bench/interleave.sh ROUNDS "CLIENT FLAGS" BIN:IMPL:LABEL...
#   bash bench/interleave.sh 4 "-workload echo -clients 50 -duration 3s" \
#       /tmp/nb.old:nexio:before bin/nexiobench:nexio:after bin/nexiobench:gws:gws
#
# BIN is a nexiobench binary (build one per revision: `git archive REV | tar
# -x -C DIR`, then `go build -o OUT ./cmd/nexiobench` in DIR/bench). Every
# run gets a fresh server process; round r starts with the r-th spec, so no
# spec always runs first. Prints one result line per run with label= and
# round= added, between two header lines with the date and `uptime`.
set -uo pipefail
[ $# -ge 3 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
rounds=$1 flags=$2
shift 2
specs=("$@")
n=${#specs[@]}
one() { # BIN IMPL: a fresh server, one client run
	local bin=$1 impl=$2 fifo addr spid
	fifo=$(mktemp -u)
	mkfifo "$fifo"
	"$bin" server -impl "$impl" -addr 127.0.0.1:0 -maxlife 3m >"$fifo" &
	spid=$!
	read -r _ addr <"$fifo"
	rm -f "$fifo"
	# shellcheck disable=SC2086 # flags are words on purpose
	"$bin" client -addr "$addr" -impl "$impl" -timeout 90s $flags
	kill "$spid"
	wait "$spid" 2>/dev/null
}
echo "# $(date -u +%FT%TZ) bash bench/interleave.sh $rounds \"$flags\" $*; uptime:$(uptime)"
for ((r = 0; r < rounds; r++)); do
	for ((k = 0; k < n; k++)); do
		IFS=: read -r bin impl label <<<"${specs[$(((k + r) % n))]}"
		line=$(one "$bin" "$impl")
		echo "label=$label $line round=$((r + 1))"
	done
done
echo "# end $(date -u +%FT%TZ); uptime:$(uptime)"
