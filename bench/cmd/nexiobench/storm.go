package main

// The reconnect storm: members of one room drop at once, messages are
// published meanwhile, and every member comes back asking for what it
// missed. It measures recovery, the thing history exists for, the same
// way for every implementation:
//
//	nexiobench storm -impl nexio -engine redis -members 5000 -msgs 10000
//
// 1. Start the node processes (memory: one; redis: A and B sharing a
//    Redis, members on B).
// 2. Every member joins room "storm"; one warm-up message gives each a
//    position.
// 3. Drop: memory — the clients close every socket at once; redis — node B
//    is killed (SIGKILL), as a crash or an OOM kill would.
// 4. -msgs messages are published through node A.
// 5. Every member reconnects to A asking to resume after its position,
//    and reads until it has the last message. Measured: the time from the
//    first reconnect until every member has every message, the messages
//    lost (a gap, or a member told it cannot recover) and duplicated, and
//    with Redis the Redis commands per recovering member (INFO
//    commandstats before and after).
//
// The node side of each implementation lives in storm_<impl>.go and
// serves two things: the room's WebSocket (with its own resume
// protocol) and POST /publish?n=N, which publishes N messages in a loop
// and answers with the last one's position as "epoch offset".

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stormImpl is one implementation's side of the storm.
type stormImpl struct {
	// node builds the node's handler: the room's WebSocket route and
	// /publish. engine is "memory" or "redis"; prefix isolates its Redis
	// keys; history is the number of messages kept.
	node func(engine, redisAddr, prefix string, history int) (http.Handler, func(), error)
	// command, when set, runs the node as another program instead (it
	// prints "listening ADDR" as storm-node does).
	command func(engine, redisAddr, prefix string, history int) *exec.Cmd
	// member drives one member's connection; see stormMember.
	member stormProtocol
}

// stormProtocol is the client side of an implementation's resume
// protocol.
type stormProtocol interface {
	// join dials the node and joins the room: live only when pos is
	// zero, otherwise resuming after pos. It returns once the member is
	// in the room (the implementation confirmed it), with a reader that
	// yields the offsets of the messages that follow, in the order they
	// arrive (replayed first).
	join(addr string, pos stormPos) (stormConn, error)
}

// stormConn is one joined member's connection.
type stormConn interface {
	// next returns the offset of the next message (the benchmark's
	// sequence: 1 for the warm-up, +1 for each message after it), or an
	// error when the connection ends.
	next() (offset uint64, err error)
	// position is what the member passes to join to resume after the
	// last message next returned (offset: that message's; epoch: the
	// implementation's resume token).
	position() stormPos
	// recovered reports what the implementation said of the resume.
	recovered() bool
	close()
}

type stormPos struct {
	epoch  string
	offset uint64
}

var stormImpls = map[string]stormImpl{}

func registerStorm(name string, s stormImpl) { stormImpls[name] = s }

// stormNodeMain serves one node until SIGTERM (or SIGKILL, for the crash).
func stormNodeMain(args []string) error {
	fs := flag.NewFlagSet("storm-node", flag.ExitOnError)
	name := fs.String("impl", "nexio", "implementation")
	engine := fs.String("engine", "memory", "memory or redis")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address (engine redis), or NATS URL (engine nats)")
	prefix := fs.String("prefix", "storm", "Redis key prefix")
	history := fs.Int("history", 20000, "messages kept per room")
	maxLife := fs.Duration("maxlife", 10*time.Minute, "exit by itself after this long")
	_ = fs.Parse(args)
	im, ok := stormImpls[*name]
	if !ok {
		return fmt.Errorf("no storm side for -impl %q", *name)
	}
	raiseFileLimit()
	h, stop, err := im.node(*engine, *redisAddr, *prefix, *history)
	if err != nil {
		return err
	}
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case <-time.After(*maxLife):
		return errors.New("storm node: maxlife reached")
	case err := <-errc:
		return err
	}
}

// stormNode is a node process started by the storm.
type stormNode struct {
	cmd  *exec.Cmd
	addr string
}

func startStormNode(impl, engine, redisAddr, prefix string, history int) (*stormNode, error) {
	cmd := exec.Command(os.Args[0], "storm-node", "-impl", impl, "-engine", engine,
		"-redis", redisAddr, "-prefix", prefix, "-history", strconv.Itoa(history))
	if s := stormImpls[impl]; s.command != nil {
		cmd = s.command(engine, redisAddr, prefix, history)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				line <- a
			}
		}
	}()
	select {
	case a := <-line:
		return &stormNode{cmd: cmd, addr: a}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("storm node %s did not start", impl)
	}
}

func (n *stormNode) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
}

func (n *stormNode) kill() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// publish asks node n to publish count messages; it returns the last
// one's position.
func (n *stormNode) publish(count int) (stormPos, error) {
	// Bounded: a peer that cannot publish count messages in this long
	// fails the run rather than hanging it.
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Post("http://"+n.addr+"/publish?n="+strconv.Itoa(count), "text/plain", nil)
	if err != nil {
		return stormPos{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return stormPos{}, fmt.Errorf("publish: %s: %s", resp.Status, b)
	}
	epoch, off, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	o, err := strconv.ParseUint(off, 10, 64)
	if !ok || err != nil {
		return stormPos{}, fmt.Errorf("publish: bad answer %q", b)
	}
	return stormPos{epoch, o}, nil
}

// stormMember is one member's state across the storm.
type stormMember struct {
	conn stormConn
	pos  stormPos
	got  atomic.Bool // reached the target
	lost atomic.Int64
	dup  atomic.Int64

	delivered atomic.Int64 // messages received while recovering
}

func stormMain(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ExitOnError)
	name := fs.String("impl", "nexio", "implementation: "+fmt.Sprint(stormNames()))
	engine := fs.String("engine", "memory", "memory (one node; clients drop their sockets), redis or nats (two nodes; the members' node is killed; nats: nexio only)")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS URL (engine nats)")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address (loopback)")
	members := fs.Int("members", 5000, "members of the room")
	msgs := fs.Int("msgs", 10000, "messages published while they are away")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up on recovery after this long")
	pass := fs.Int("pass", 1, "pass number, for the result line")
	_ = fs.Parse(args)
	im, ok := stormImpls[*name]
	if !ok {
		return fmt.Errorf("no storm side for -impl %q (have %v)", *name, stormNames())
	}
	if err := requireLoopback(*redisAddr); err != nil {
		return err
	}
	raiseFileLimit()
	line := fmt.Sprintf("impl=%s workload=storm engine=%s members=%d msgs=%d", *name, *engine, *members, *msgs)
	backend := *redisAddr
	if *engine == "nats" {
		backend = *natsURL
	}
	res, err := runStorm(im, *name, *engine, backend, *members, *msgs, *timeout)
	if err != nil {
		fmt.Printf("%s pass=%d ok=0 err=%q\n", line, *pass, err.Error())
		return nil
	}
	fmt.Printf("%s %s pass=%d ok=%d\n", line, res, *pass, b2i(!strings.Contains(res, "complete=0")))
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func stormNames() []string {
	var names []string
	for n := range stormImpls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runStorm runs one storm; backend is the Redis address or the NATS URL.
func runStorm(im stormImpl, name, engine, backend string, members, msgs int, timeout time.Duration) (string, error) {
	prefix := fmt.Sprintf("storm-%s-%d", name, time.Now().UnixNano())
	history := msgs * 2
	a, err := startStormNode(name, engine, backend, prefix, history)
	if err != nil {
		return "", err
	}
	defer a.stop()
	home := a // the node members start on
	if engine != "memory" {
		b, err := startStormNode(name, engine, backend, prefix, history)
		if err != nil {
			return "", err
		}
		defer b.kill()
		home = b
	}

	// Join, then one warm-up message gives every member a position.
	ms := make([]*stormMember, members)
	if err := forEach(ms, func(i int, _ *stormMember) error {
		c, err := im.member.join(home.addr, stormPos{})
		if err != nil {
			return fmt.Errorf("member %d: join: %w", i, err)
		}
		ms[i] = &stormMember{conn: c}
		return nil
	}); err != nil {
		return "", err
	}
	warm, err := a.publish(1)
	if err != nil {
		return "", err
	}
	if err := forEach(ms, func(i int, m *stormMember) error {
		off, err := m.conn.next()
		if err != nil {
			return fmt.Errorf("member %d: warm-up: %w", i, err)
		}
		if off != warm.offset {
			return fmt.Errorf("member %d: warm-up arrived as %d, published as %d", i, off, warm.offset)
		}
		m.pos = m.conn.position()
		return nil
	}); err != nil {
		return "", err
	}

	// The drop.
	if engine != "memory" {
		home.kill()
	}
	forEach(ms, func(_ int, m *stormMember) error { m.conn.close(); return nil })

	pubStart := time.Now()
	last, err := a.publish(msgs)
	if err != nil {
		return "", err
	}
	pubTime := time.Since(pubStart)
	if last.offset != warm.offset+uint64(msgs) {
		return "", fmt.Errorf("published up to %d, want %d", last.offset, warm.offset+uint64(msgs))
	}

	cmdsBefore, cmdsAfter := int64(-1), int64(-1)
	if engine == "redis" {
		cmdsBefore = redisCalls(backend)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var unrecovered atomic.Int64
	// Every member reconnects at once; only the dials are bounded (see
	// forEach), the reads all run together.
	dials := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.recover(im, a.addr, last, dials, ctx, &unrecovered)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if engine == "redis" {
		cmdsAfter = redisCalls(backend)
	}
	return stormResult(ms, members, msgs, pubTime, elapsed, unrecovered.Load(), engine, cmdsBefore, cmdsAfter), nil
}

// recover reconnects m asking for what it missed, and reads until it has
// the last message.
func (m *stormMember) recover(im stormImpl, addr string, last stormPos, dials chan struct{}, ctx context.Context, unrecovered *atomic.Int64) {
	dials <- struct{}{}
	c, err := im.member.join(addr, m.pos)
	<-dials
	if err != nil {
		m.lost.Add(int64(last.offset - m.pos.offset))
		stormErr("rejoin", err)
		return
	}
	m.conn = c
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	if !c.recovered() {
		// Told plainly: the missed messages will not come.
		unrecovered.Add(1)
		m.lost.Add(int64(last.offset - m.pos.offset))
		c.close()
		return
	}
	want := m.pos.offset + 1
	for want <= last.offset {
		off, err := c.next()
		if err != nil {
			m.lost.Add(int64(last.offset - want + 1))
			stormErr("recovering", err)
			return
		}
		m.delivered.Add(1)
		switch {
		case off < want:
			m.dup.Add(1)
		case off > want:
			m.lost.Add(int64(off - want))
			want = off + 1
		default:
			want++
		}
	}
	m.got.Store(true)
	c.close()
}

func stormResult(ms []*stormMember, members, msgs int, pubTime, elapsed time.Duration, unrecovered int64, engine string, cmdsBefore, cmdsAfter int64) string {
	var lost, dup, complete, delivered int64
	for _, m := range ms {
		delivered += m.delivered.Load()
		lost += m.lost.Load()
		dup += m.dup.Load()
		if m.got.Load() {
			complete++
		}
	}
	res := fmt.Sprintf("publish_ms=%.0f recover_ms=%.0f delivered=%d delivered_per_s=%.0f complete=%d lost=%d dup=%d unrecovered=%d",
		float64(pubTime.Microseconds())/1000, float64(elapsed.Microseconds())/1000,
		delivered, float64(delivered)/elapsed.Seconds(), b2i(complete == int64(members)), lost, dup, unrecovered)
	if engine == "redis" && cmdsBefore >= 0 && cmdsAfter >= 0 {
		// INFO itself and the publish loop's commands are not in the
		// window: it opens after /publish returned.
		res += fmt.Sprintf(" redis_cmds_per_member=%.1f", float64(cmdsAfter-cmdsBefore-1)/float64(members))
	}
	return res
}

// forEach runs f for every element with bounded concurrency (thousands of
// simultaneous dials would overflow the listen backlog and measure SYN
// retries), and returns the first error.
func forEach(ms []*stormMember, f func(i int, m *stormMember) error) error {
	const parallel = 256
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	for i := range ms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i, ms[i]); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// redisCalls returns the total commands Redis has processed (the sum of
// INFO commandstats calls), or -1 when Redis does not answer.
func redisCalls(addr string) int64 {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n"); err != nil {
		return -1
	}
	br := bufio.NewReader(c)
	hdr, err := br.ReadString('\n')
	if err != nil || len(hdr) < 2 || hdr[0] != '$' {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(hdr[1:]))
	if err != nil {
		return -1
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return -1
	}
	var total int64
	for _, l := range bytes.Split(body, []byte("\n")) {
		// cmdstat_get:calls=12,usec=...
		_, rest, ok := bytes.Cut(l, []byte(":calls="))
		if !ok {
			continue
		}
		v, _, _ := bytes.Cut(rest, []byte(","))
		k, err := strconv.ParseInt(string(v), 10, 64)
		if err == nil {
			total += k
		}
	}
	return total
}

// jsonUint finds `"key":<digits>` in b from i and returns the number and
// the index after it, or ok false.
func jsonUint(b []byte, key string, i int) (v uint64, next int, ok bool) {
	k := `"` + key + `":`
	j := bytes.Index(b[i:], []byte(k))
	if j < 0 {
		return 0, i, false
	}
	p := i + j + len(k)
	start := p
	for p < len(b) && b[p] >= '0' && b[p] <= '9' {
		v = v*10 + uint64(b[p]-'0')
		p++
	}
	return v, p, p > start
}

// jsonString finds `"key":"<value>"` in b and returns value (no escapes
// expected: epochs are plain tokens).
func jsonString(b []byte, key string) string {
	k := `"` + key + `":"`
	j := bytes.Index(b, []byte(k))
	if j < 0 {
		return ""
	}
	rest := b[j+len(k):]
	e := bytes.IndexByte(rest, '"')
	if e < 0 {
		return ""
	}
	return string(rest[:e])
}

// stormErrs counts member failures; the first few are printed to stderr
// so that a number of lost messages comes with its reason.
var stormErrs atomic.Int64

func stormErr(what string, err error) {
	if stormErrs.Add(1) <= 3 {
		fmt.Fprintf(os.Stderr, "storm: a member failed %s: %v\n", what, err)
	}
}
