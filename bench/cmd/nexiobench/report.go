package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// record is one parsed result line.
type record map[string]string

func (r record) num(k string) (float64, bool) {
	v, err := strconv.ParseFloat(r[k], 64)
	return v, err == nil
}

// parseResults reads result lines (key=value separated by spaces); anything
// else in the files (progress, blank lines) is skipped.
func parseResults(paths []string) ([]record, error) {
	var recs []record
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "impl=") {
				continue
			}
			r := record{}
			for _, tok := range strings.Fields(line) {
				if k, v, ok := strings.Cut(tok, "="); ok {
					r[k] = v
				}
			}
			recs = append(recs, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// series is one metric of one implementation in one configuration, over passes.
type series []float64

func (s series) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := append(series(nil), s...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func (s series) min() float64 {
	m := math.Inf(1)
	for _, v := range s {
		m = math.Min(m, v)
	}
	return m
}

func (s series) max() float64 {
	m := math.Inf(-1)
	for _, v := range s {
		m = math.Max(m, v)
	}
	return m
}

// config identifies a workload configuration: its rows are implementations.
type config struct {
	workload string
	clients  int
	window   int
}

func (c config) title() string {
	switch c.workload {
	case "echo":
		return fmt.Sprintf("Echo: %s clients, 64-byte text round trips", group(c.clients))
	case "fanout":
		return fmt.Sprintf("Fanout: %s members, window %d, 128-byte messages", group(c.clients), c.window)
	case "idle":
		return fmt.Sprintf("Idle: %s connections joined to a room", group(c.clients))
	case "handshakes":
		return fmt.Sprintf("Handshakes: %d concurrent workers, connect and drop", c.clients)
	}
	return c.workload
}

// table gathers, per configuration and implementation, each metric's series.
type table struct {
	configs []config
	data    map[config]map[string]map[string]series // config → impl → metric → values
	impls   []string                                // in report order
	fails   []record
	passes  int
}

func buildTable(recs []record) *table {
	t := &table{data: map[config]map[string]map[string]series{}}
	seenImpl := map[string]bool{}
	for _, r := range recs {
		if r["ok"] != "1" {
			t.fails = append(t.fails, r)
			continue
		}
		cl, _ := strconv.Atoi(r["clients"])
		w, _ := strconv.Atoi(r["window"])
		c := config{r["workload"], cl, w}
		if t.data[c] == nil {
			t.data[c] = map[string]map[string]series{}
			t.configs = append(t.configs, c)
		}
		im := r["impl"]
		seenImpl[im] = true
		if t.data[c][im] == nil {
			t.data[c][im] = map[string]series{}
		}
		for k := range r {
			if v, ok := r.num(k); ok && k != "clients" && k != "window" && k != "pass" && k != "ok" {
				t.data[c][im][k] = append(t.data[c][im][k], v)
			}
		}
		if p, err := strconv.Atoi(r["pass"]); err == nil && p > t.passes {
			t.passes = p
		}
	}
	order := map[string]int{"echo": 0, "fanout": 1, "idle": 2, "handshakes": 3}
	sort.SliceStable(t.configs, func(i, j int) bool {
		a, b := t.configs[i], t.configs[j]
		if order[a.workload] != order[b.workload] {
			return order[a.workload] < order[b.workload]
		}
		if a.window != b.window {
			return a.window > b.window
		}
		return a.clients < b.clients
	})
	for _, n := range implOrder {
		if seenImpl[n] {
			t.impls = append(t.impls, n)
			delete(seenImpl, n)
		}
	}
	var rest []string
	for n := range seenImpl {
		rest = append(rest, n)
	}
	sort.Strings(rest)
	t.impls = append(t.impls, rest...)
	return t
}

// med returns the median of metric for impl in c, NaN if it did not run.
func (t *table) med(c config, impl, metric string) float64 {
	return t.data[c][impl][metric].median()
}

// bestOf returns the highest median of metric among impls, and which one.
func (t *table) bestOf(c config, metric string, impls ...string) (float64, string) {
	best, who := math.NaN(), ""
	for _, im := range impls {
		if v := t.med(c, im, metric); !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
			best, who = v, im
		}
	}
	return best, who
}

// peers are the implementations that are not nexio, in any of its modes.
func (t *table) peers() []string {
	var p []string
	for _, im := range t.impls {
		if !strings.HasPrefix(im, "nexio") {
			p = append(p, im)
		}
	}
	return p
}

// group formats an integer with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// human formats v to about three significant digits (312k, 1.25M).
func human(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// dur formats a duration given in µs with a unit that keeps it short.
func dur(us float64) string {
	switch {
	case math.IsNaN(us):
		return "–"
	case us < 1000:
		return strconv.FormatFloat(us, 'f', 0, 64) + " µs"
	case us < 1e6:
		return strconv.FormatFloat(us/1e3, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + " s"
	}
}

func rng(s series) string {
	if len(s) == 0 {
		return "–"
	}
	return human(s.min()) + " – " + human(s.max())
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

func reportMain(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	var ins multiFlag
	fs.Var(&ins, "in", "result file (repeatable)")
	mdPath := fs.String("md", "", "write the Markdown report here (default stdout)")
	svgPath := fs.String("svg", "", "write the fanout chart (SVG) here")
	svgRef := fs.String("svgref", "benchmarks-fanout.svg", "how the Markdown refers to the chart")
	results := fs.String("results", "", "where the raw lines are kept, for the report's text")
	command := fs.String("cmd", "make bench", "the command that produced the results, for the report's text")
	_ = fs.Parse(args)
	if len(ins) == 0 {
		return fmt.Errorf("report: no -in file")
	}
	recs, err := parseResults(ins)
	if err != nil {
		return err
	}
	t := buildTable(recs)
	if *svgPath != "" {
		if err := os.WriteFile(*svgPath, []byte(fanoutSVG(t)), 0o644); err != nil {
			return err
		}
	}
	md := markdown(t, *svgPath != "", *svgRef, *results, *command)
	if *mdPath == "" {
		_, err = os.Stdout.WriteString(md)
		return err
	}
	return os.WriteFile(*mdPath, []byte(md), 0o644)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		kernel = "Linux " + string(b)
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d in each process), %s, %s/%s, %s",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), kernel, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func markdown(t *table, haveSVG bool, svgRef, results, command string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("# Benchmarks\n\n")
	p("<!-- Generated by bench/run.sh (nexiobench report); edit the generator, or bench/analysis.md for the hand-written sections at the end, not this file. -->\n\n")
	p("nexio side by side with the usual ways to serve WebSockets in Go, measured on one machine, ")
	p("server and load generator in separate processes on loopback. Every number is the **median of %d passes**, ", t.passes)
	p("with the lowest and highest pass as the range; the implementations are interleaved within each pass ")
	p("(every workload runs for every implementation back to back, starting with a different one each pass), ")
	p("and each run gets a fresh server process.\n\n")
	p("- Machine: %s\n", machine())
	p("- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Other work on the machine shows up here; the ranges show what it did.
		p("- Load average when the report was written (1, 5, 15 min): %s\n", strings.Join(strings.Fields(string(la))[:3], ", "))
	}
	p("- Command: `%s` (the quick plan: 1.5 s measured phases; `bash bench/run.sh full` runs 5 s phases, 5 passes and 10,000 members)\n", command)
	if results != "" {
		p("- Raw result lines: `%s`\n", results)
	}
	p("\n")

	p("## Implementations\n\n| name | how it is written |\n|---|---|\n")
	for _, im := range t.impls {
		p("| %s | %s |\n", im, implAbout[im])
	}
	p("\nThe load generator is the same for all: a minimal RFC 6455 client (bench/cmd/nexiobench/wsclient.go) ")
	p("that reads frame by frame, so it can check that every broadcast arrives **as its own message in its own ")
	p("frame, with the exact bytes, in order**; a run that sees anything else fails.")
	if containsStr(t.impls, "centrifuge") {
		p(" centrifuge's members speak its JSON protocol (connect, subscribe, publications as push lines); ")
		p("its writer merges up to 16 queued publications into one frame, so for it the check is per publication: ")
		p("exact bytes, in order, nothing lost.")
	}
	p("\n\n")

	if haveSVG {
		p("![fanout chart](%s)\n\n", svgRef)
	}

	if len(t.impls) > 0 && t.data != nil {
		p("## Targets\n\n")
		p("%s\n", targets(t))
	}

	peers := t.peers()
	for _, c := range t.configs {
		p("## %s\n\n", c.title())
		switch c.workload {
		case "fanout":
			best, who := t.bestOf(c, "msgs_per_s", peers...)
			p("Delivered messages/s = members × messages ÷ (first send → last delivery). Time to last member: ")
			p("from the publisher's send of a message to the moment its last member has read it; ")
			if c.window > 1 {
				p("with %d broadcasts in flight it includes the wait behind the ones before. ", c.window)
			}
			p("Best peer here: %s.\n\n", who)
			p("| implementation | delivered msgs/s | range | ÷ best peer | time to last member p50 | p99 | server CPU per delivered msg |\n")
			p("|---|---:|---:|---:|---:|---:|---:|\n")
			for _, im := range t.impls {
				m := t.data[c][im]
				if m == nil {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s | %s ns |\n", im, human(m["msgs_per_s"].median()), rng(m["msgs_per_s"]),
					ratio(m["msgs_per_s"].median(), best), dur(m["p50_us"].median()), dur(m["p99_us"].median()),
					human(m["srv_cpu_ns_per_msg"].median()))
			}
		case "echo":
			base := t.med(c, "coder", "msgs_per_s")
			p("| implementation | round trips/s | range | ÷ raw coder | p50 | p99 | server CPU per round trip |\n")
			p("|---|---:|---:|---:|---:|---:|---:|\n")
			for _, im := range t.impls {
				m := t.data[c][im]
				if m == nil {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s | %s ns |\n", im, human(m["msgs_per_s"].median()), rng(m["msgs_per_s"]),
					ratio(m["msgs_per_s"].median(), base), dur(m["p50_us"].median()), dur(m["p99_us"].median()),
					human(m["srv_cpu_ns_per_msg"].median()))
			}
		case "idle":
			p("Read by the server process itself (after a GC) before and after the connections joined; ")
			p("the difference divided by the connections. Heap can exceed RSS when buffers are allocated but never touched.\n\n")
			p("| implementation | RSS KiB/conn | range | heap KiB/conn | stack KiB/conn | goroutines/conn |\n")
			p("|---|---:|---:|---:|---:|---:|\n")
			for _, im := range t.impls {
				m := t.data[c][im]
				if m == nil {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s |\n", im, human(m["rss_kib_per_conn"].median()), rng(m["rss_kib_per_conn"]),
					human(m["heap_kib_per_conn"].median()), human(m["stack_kib_per_conn"].median()),
					strconv.FormatFloat(m["goroutines_per_conn"].median(), 'f', 2, 64))
			}
		case "handshakes":
			base := t.med(c, "coder", "conns_per_s")
			p("Each worker connects to `/echo` (for nexio through its middleware chain), waits for the 101, drops the connection and starts over.\n\n")
			p("| implementation | handshakes/s | range | ÷ raw coder | p50 | p99 | server CPU per connection |\n")
			p("|---|---:|---:|---:|---:|---:|---:|\n")
			for _, im := range t.impls {
				m := t.data[c][im]
				if m == nil {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s | %s µs |\n", im, human(m["conns_per_s"].median()), rng(m["conns_per_s"]),
					ratio(m["conns_per_s"].median(), base), dur(m["p50_us"].median()), dur(m["p99_us"].median()),
					human(m["srv_cpu_ns_per_conn"].median()/1e3))
			}
		}
		p("\n")
	}

	if len(t.fails) > 0 {
		p("## Failed runs\n\nThese runs did not complete; their numbers are not in the tables.\n\n")
		for _, r := range t.fails {
			p("- pass %s, %s %s clients=%s window=%s: `%s`\n", r["pass"], r["impl"], r["workload"], r["clients"], r["window"], r["err"])
		}
		p("\n")
	}

	p("## Reproduce\n\n```sh\nmake bench                 # or: bash bench/run.sh (quick), bash bench/run.sh full\n")
	p("cd bench && go build -o bin/nexiobench ./cmd/nexiobench\n")
	p("./bin/nexiobench run -quick -passes 3 -workloads fanout -impls nexio,gws,melody\n")
	p("./bin/nexiobench server -impl gws -addr 127.0.0.1:8080 &   # one server by hand\n")
	p("./bin/nexiobench client -workload fanout -addr 127.0.0.1:8080 -clients 1000 -window 32\n```\n")
	return b.String()
}

// targets checks the targets for nexio against the same run's peers.
func targets(t *table) string {
	var b strings.Builder
	if !containsStr(t.impls, "nexio") {
		return "nexio was not part of this run, so its targets could not be checked.\n"
	}
	b.WriteString("| target | measured | |\n|---|---|---|\n")
	row := func(name string, got, want float64, detail string, higherIsBetter bool) {
		mark := "met"
		switch {
		case math.IsNaN(got) || math.IsNaN(want):
			mark = "not measured"
		case higherIsBetter && got < want, !higherIsBetter && got > want:
			mark = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, detail, mark)
	}
	peers := t.peers()
	for _, tc := range []struct {
		n, w  int
		times float64
	}{{1000, 32, 4}, {5000, 32, 3}} {
		c := config{"fanout", tc.n, tc.w}
		best, who := t.bestOf(c, "msgs_per_s", peers...)
		got := t.med(c, "nexio", "msgs_per_s")
		row(fmt.Sprintf("fanout N=%s, window 32: ≥ %.0f× best peer", group(tc.n), tc.times),
			got/best, tc.times, fmt.Sprintf("%s vs %s %s = %s", human(got), who, human(best), ratio(got, best)), true)
	}
	{
		c := config{"fanout", 1000, 1}
		best, who := t.bestOf(c, "msgs_per_s", peers...)
		got := t.med(c, "nexio", "msgs_per_s")
		row("fanout N=1,000, window 1: ≥ 1.1× best peer", got/best, 1.1,
			fmt.Sprintf("%s vs %s %s = %s", human(got), who, human(best), ratio(got, best)), true)
	}
	for _, c := range t.configs {
		switch c.workload {
		case "echo":
			got, base := t.med(c, "nexio", "msgs_per_s"), t.med(c, "gws", "msgs_per_s")
			row("echo: ≥ 1.0× gws", got/base, 1,
				fmt.Sprintf("%s vs %s = %s", human(got), human(base), ratio(got, base)), true)
		case "idle":
			gws := t.med(c, "gws", "rss_kib_per_conn")
			held := t.med(c, "nexio", "rss_kib_per_conn")
			row("idle, held by its handler: RSS ≤ 18 KiB per connection", held, 18,
				fmt.Sprintf("%s KiB", human(held)), false)
			if det := t.med(c, "nexio-detach", "rss_kib_per_conn"); !math.IsNaN(det) {
				row("idle, detached: RSS ≤ gws per connection", det, gws,
					fmt.Sprintf("%s KiB vs gws %s KiB (gws-go %s KiB)", human(det), human(gws), human(t.med(c, "gws-go", "rss_kib_per_conn"))), false)
				row("idle, detached: RSS ≤ 10 KiB per connection", det, 10,
					fmt.Sprintf("%s KiB", human(det)), false)
			}
		case "handshakes":
			got, base := t.med(c, "nexio", "conns_per_s"), t.med(c, "gws", "conns_per_s")
			row("handshakes through the default chain: ≥ 1.0× gws", got/base, 1,
				fmt.Sprintf("%s/s vs %s/s = %s", human(got), human(base), ratio(got, base)), true)
		}
	}
	return b.String()
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ---- chart ----

var palette = map[string]string{
	"nexio":    "#d62728",
	"coder":    "#7f7f7f",
	"coderhub": "#bcbd22",
	"gorilla":  "#1f77b4",
	"melody":   "#2ca02c",
	"gws":      "#9467bd",
}

func colorOf(i int, impl string) string {
	if c, ok := palette[impl]; ok {
		return c
	}
	extra := []string{"#8c564b", "#e377c2", "#17becf", "#ff7f0e"}
	return extra[i%len(extra)]
}

// fanoutSVG draws delivered msgs/s per fanout configuration as grouped bars
// (median), with a whisker from the lowest to the highest pass.
func fanoutSVG(t *table) string {
	var cfgs []config
	for _, c := range t.configs {
		if c.workload == "fanout" {
			cfgs = append(cfgs, c)
		}
	}
	const (
		W, H                     = 960, 460
		left, right, top, bottom = 80, 20, 70, 70
	)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="16" font-weight="bold">Fanout: delivered messages/s (median of %d passes; whiskers: lowest–highest pass)</text>`+"\n", left, t.passes)
	if len(cfgs) == 0 {
		p(`<text x="%d" y="%d">no fanout results</text></svg>`+"\n", left, H/2)
		return b.String()
	}

	maxV := 0.0
	for _, c := range cfgs {
		for _, im := range t.impls {
			if s := t.data[c][im]["msgs_per_s"]; len(s) > 0 {
				maxV = math.Max(maxV, s.max())
			}
		}
	}
	step := niceStep(maxV / 5)
	top5 := math.Ceil(maxV/step) * step
	if top5 == 0 {
		top5 = 1
	}
	plotW, plotH := float64(W-left-right), float64(H-top-bottom)
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/top5) }

	// Axis and grid.
	for v := 0.0; v <= top5+step/2; v += step {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, y(v), y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y(v), human(v))
	}
	p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, W-right, y(0), y(0))

	// Legend.
	lx := float64(left)
	for i, im := range t.impls {
		p(`<rect x="%.1f" y="38" width="12" height="12" fill="%s"/><text x="%.1f" y="48">%s</text>`+"\n", lx, colorOf(i, im), lx+16, im)
		lx += 24 + 8*float64(len(im)) + 12
	}

	groupW := plotW / float64(len(cfgs))
	barW := groupW * 0.8 / float64(len(t.impls))
	for gi, c := range cfgs {
		gx := float64(left) + groupW*float64(gi) + groupW*0.1
		for i, im := range t.impls {
			s := t.data[c][im]["msgs_per_s"]
			x := gx + barW*float64(i)
			if len(s) == 0 {
				p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#999">n/a</text>`+"\n", x+barW/2, y(0)-4)
				continue
			}
			med := s.median()
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s msgs/s (range %s)</title></rect>`+"\n",
				x+1, y(med), barW-2, y(0)-y(med), colorOf(i, im), im, human(med), rng(s))
			cx := x + barW/2
			p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n", cx, cx, y(s.min()), y(s.max()))
			p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n", cx-3, cx+3, y(s.max()), y(s.max()))
			p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n", cx-3, cx+3, y(s.min()), y(s.min()))
			p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", cx, y(s.max())-4, human(med))
		}
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s members</text>`+"\n", gx+groupW*0.4, H-bottom+18, group(c.clients))
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#555">window %d</text>`+"\n", gx+groupW*0.4, H-bottom+34, c.window)
	}
	p(`<text x="%d" y="%d" fill="#555">128-byte text messages, every message its own frame; 2 cores shared by server and load generator, loopback.</text>`+"\n", left, H-10)
	p("</svg>\n")
	return b.String()
}

// niceStep rounds a raw axis step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}
