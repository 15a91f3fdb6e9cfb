#!/usr/bin/env bash
# The cost of wsmw/wsmetrics and wsmw/wsotel: each route with the
# middleware next to the bare route, per handshake and per echoed
# message, interleaved (bare, then instrumented, COUNT times). Prints a
# Markdown section for docs/benchmarks.md on stdout: the median of each
# column and the raw lines. bench/run.sh appends it to the report.
#
#   bash bench/observability.sh            # COUNT=10 HANDSHAKES=2000x ECHOES=5000x
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-10}
hs=${HANDSHAKES:-2000x}
echo_n=${ECHOES:-5000x}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
cmd_hs="go test -run '^\$' -bench Handshake -benchtime $hs -count $count ./wsmw/wsmetrics ./wsmw/wsotel"
cmd_echo="go test -run '^\$' -bench 'Echo|QueueLength|Scrape' -benchtime $echo_n -count $count ./wsmw/wsmetrics ./wsmw/wsotel"
go test -run '^$' -bench Handshake -benchtime "$hs" -count "$count" ./wsmw/wsmetrics ./wsmw/wsotel >"$raw"
go test -run '^$' -bench 'Echo|QueueLength|Scrape' -benchtime "$echo_n" -count "$count" ./wsmw/wsmetrics ./wsmw/wsotel >>"$raw"

echo "## Observability: wsmetrics and wsotel"
echo
echo "Each route with the middleware next to the same route without it, in one process over loopback (client included), interleaved $count times. \`cpu-ns/op\` is the process's CPU time per operation (getrusage), steadier than wall time on a shared machine; medians of the $count runs. Neither middleware does anything per message (wsmetrics reads \`Conn.Stats\` when scraped; wsotel only sets attributes at the end), so the echo rows differ by noise only; per handshake, wsmetrics adds a map insert, a few counter updates and 5 small allocations, wsotel a span. \`BenchmarkQueueLength\` is one \`hub.Options.OnEnqueue\` call with \`wsmetrics.QueueLength\`; \`BenchmarkScrape\` one Gather of the connection metrics with 1,000 open connections. The load average below says how busy the machine was: with other work on the 2 cores, runs of one benchmark differ by 10–20 % even in CPU time, so a difference of a few percent is noise there; the B/op and allocs/op columns are exact."
echo
echo "Commands (bash bench/observability.sh, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
echo '```sh'
echo "$cmd_hs"
echo "$cmd_echo"
echo '```'
echo
echo "| benchmark | ns/op (median) | cpu-ns/op (median) | cpu vs bare | B/op | allocs/op |"
echo "|---|---|---|---|---|---|"
awk '
/^pkg:/ { pkg = $2; sub(".*/", "", pkg) }
/^Benchmark/ {
	name = pkg " " $1; sub("-[0-9]+$", "", name)
	if (!(name in seen)) { order[++n] = name; seen[name] = 1 }
	for (i = 3; i <= NF; i++) {
		if ($i == "ns/op") ns[name, ++nns[name]] = $(i-1)
		if ($i == "cpu-ns/op") cpu[name, ++ncpu[name]] = $(i-1)
		if ($i == "B/op") bop[name] = $(i-1)
		if ($i == "allocs/op") allocs[name] = $(i-1)
	}
}
function median(arr, name, k,    i, j, t, v) {
	if (k == 0) return ""
	for (i = 1; i <= k; i++) v[i] = arr[name, i] + 0
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
END {
	for (o = 1; o <= n; o++) {
		name = order[o]
		m = median(ns, name, nns[name]); c = median(cpu, name, ncpu[name])
		base = name; sub("/[a-z]+$", "/bare", base)
		rel = ""
		if (c != "" && base != name && (base in seen)) {
			b = median(cpu, base, ncpu[base])
			rel = sprintf("%+.1f%%", (c - b) * 100 / b)
		}
		printf "| %s | %.0f | %s | %s | %s | %s |\n", name, m, (c == "" ? "" : sprintf("%.0f", c)), rel, bop[name], allocs[name]
	}
}' "$raw"
echo
echo '<details><summary>raw lines</summary>'
echo
echo '```'
grep -E '^(Benchmark|goos|goarch|cpu|pkg)' "$raw"
echo '```'
echo
echo '</details>'
