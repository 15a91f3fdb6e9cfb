package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute/wstest"
)

func TestRoomsAreSeparate(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	a1 := ta.dial(t, "/ws/rooms/a", nil)
	a2 := ta.dial(t, "/ws/rooms/a", nil)
	b1 := ta.dial(t, "/ws/rooms/b", nil)
	sp := ta.dial(t, "/ws/rooms/with%20space", nil)
	testutil.Eventually(t, func() bool {
		return ta.rooms.Count("a") == 2 && ta.rooms.Count("b") == 1 && ta.rooms.Count("with space") == 1
	}, "rooms: %v", ta.rooms.RoomCounts())

	// Unchanged, to the others only, in order.
	msgs := []string{"one", `{"name":"ann","text":"two"}`, "Echo: three", ""}
	for _, m := range msgs {
		testutil.NoErr(t, a1.SendText(m))
	}
	for _, m := range msgs {
		testutil.NoErr(t, a2.ExpectText(m))
	}
	testutil.NoErr(t, a1.ExpectNoMessage(100*time.Millisecond))
	testutil.NoErr(t, b1.ExpectNoMessage(0))
	testutil.NoErr(t, sp.ExpectNoMessage(0))
}

func TestPresence(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	var p presenceResponse
	ta.getJSON(t, "/rooms/lobby/presence", &p)
	testutil.Equal(t, p.Room, "lobby")
	testutil.Equal(t, len(p.Members), 0)

	ta.dial(t, "/ws/rooms/lobby?name=bob", nil)
	ta.dial(t, "/ws/rooms/lobby?name=%20ann%0A%1B", nil) // trimmed, no control characters
	ta.dial(t, "/ws/rooms/lobby", nil)                   // no name
	ta.dial(t, "/ws/rooms/other?name=carl", nil)
	long := strings.Repeat("é", 100)
	ta.dial(t, "/ws/rooms/long?name="+long, nil)
	testutil.Eventually(t, func() bool {
		ta.getJSON(t, "/rooms/lobby/presence", &p)
		return len(p.Members) == 3
	}, "presence: %+v", p)
	testutil.Equal(t, p.Members[0].Name, "") // sorted by name
	testutil.Equal(t, p.Members[1].Name, "ann")
	testutil.Equal(t, p.Members[2].Name, "bob")
	testutil.Equal(t, p.Members[2].Node, ta.rooms.Node())
	testutil.Check(t, p.Members[2].ID != "", "no connection ID")
	testutil.Equal(t, p.LocalOnly, false)

	testutil.Eventually(t, func() bool {
		ta.getJSON(t, "/rooms/long/presence", &p)
		return len(p.Members) == 1
	}, "presence: %+v", p)
	testutil.Equal(t, p.Members[0].Name, strings.Repeat("é", maxName))
}

func TestCleanName(t *testing.T) {
	t.Parallel()
	testCases := []struct{ in, want string }{
		{"ann", "ann"},
		{"  ann  ", "ann"},
		{"a\x00n\u200bn", "an\u200bn"},
		{"\x1b[31mred", "[31mred"},
		{"bad\xffutf8", "badutf8"},
		{strings.Repeat("x", 50), strings.Repeat("x", maxName)},
		{"", ""},
	}
	for _, tc := range testCases {
		testutil.Equal(t, cleanName(tc.in), tc.want)
	}
}

// redisURL returns the Redis the tests may use, skipping the test when
// none answers (unless NEXIO_REQUIRE_REDIS=1, as in CI).
func redisURL(t *testing.T) string {
	t.Helper()
	addr := "127.0.0.1:6379"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis is required (NEXIO_REQUIRE_REDIS=1) but %s does not answer: %v", addr, err)
		}
		t.Skipf("no Redis on %s: %v", addr, err)
	}
	c.Close()
	return "redis://" + addr + "/0"
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestRoomsSpanInstancesOnRedis runs two instances on one Redis: a room
// spans both, presence lists both members, and /ws/chat stays per
// instance.
func TestRoomsSpanInstancesOnRedis(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	one := start(t, config{RedisURL: url})
	two := start(t, config{RedisURL: url})
	room := randomName("x-")

	a := one.dial(t, "/ws/rooms/"+room+"?name=ann", nil)
	b := two.dial(t, "/ws/rooms/"+room+"?name=bob", nil)
	testutil.Eventually(t, func() bool { return one.rooms.Count(room) == 1 && two.rooms.Count(room) == 1 }, "joins")

	roomsCross(t, a, b)

	testutil.NoErr(t, a.SendText(`{"name":"ann","text":"hello bob"}`))
	testutil.NoErr(t, b.ExpectText(`{"name":"ann","text":"hello bob"}`))
	testutil.NoErr(t, b.SendText("hello ann"))
	testutil.NoErr(t, a.ExpectText("hello ann"))
	testutil.NoErr(t, a.ExpectNoMessage(200*time.Millisecond))

	// Presence spans the instances; /stats stays per instance.
	var p presenceResponse
	testutil.Eventually(t, func() bool {
		one.getJSON(t, "/rooms/"+room+"/presence", &p)
		return len(p.Members) == 2
	}, "presence: %+v", p)
	testutil.Equal(t, p.Members[0].Name, "ann")
	testutil.Equal(t, p.Members[0].Node, one.rooms.Node())
	testutil.Equal(t, p.Members[1].Name, "bob")
	testutil.Equal(t, p.Members[1].Node, two.rooms.Node())
	testutil.Equal(t, one.statsNow(t).Rooms[room], 1)
	testutil.Equal(t, one.statsNow(t).Redis, "up")

	// /ws/chat does not cross.
	c1 := one.dial(t, "/ws/chat", nil)
	c2 := two.dial(t, "/ws/chat", nil)
	testutil.Eventually(t, func() bool { return one.local.Count("chat") == 1 && two.local.Count("chat") == 1 }, "chat joins")
	testutil.NoErr(t, c1.SendText("local only"))
	testutil.NoErr(t, c2.ExpectNoMessage(300*time.Millisecond))
}

// roomsCross sends probes from a to the room until b receives one (the
// subscription to the room may take a moment to reach the broker), then
// reads b up to the last probe sent: one sender's messages arrive in
// order, so nothing of the probes is left to arrive after it, and what
// follows can be checked exactly.
func roomsCross(t *testing.T, a, b *wstest.Conn) {
	t.Helper()
	lastSent, got := sendUntilCrossed(t, a, b, func(text string) (string, bool) { return text, strings.HasPrefix(text, "probe ") })
	for got != lastSent {
		var err error
		got, err = b.ReceiveText()
		testutil.NoErr(t, err)
	}
}

// sendUntilCrossed sends probes from a until b receives a message that
// probe (which reads a message into a probe's text) accepts; it returns
// the last probe sent and the one b received.
func sendUntilCrossed(t *testing.T, a, b *wstest.Conn, probe func(text string) (string, bool)) (lastSent, got string) {
	t.Helper()
	b.Timeout = 100 * time.Millisecond
	defer func() { b.Timeout = 0 }()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no message crossed instances within 10 s")
		}
		lastSent = fmt.Sprint("probe ", i)
		testutil.NoErr(t, a.SendText(lastSent))
		if text, err := b.ReceiveText(); err == nil {
			if got, ok := probe(text); ok {
				return lastSent, got
			}
		}
	}
}

// drain discards what c has received so far.
func drain(c *wstest.Conn) {
	for c.ExpectNoMessage(50*time.Millisecond) != nil {
	}
}

// TestRedisUnreachable starts with a Redis that does not answer: rooms
// work on this instance, and the log says so once.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now

	ta := start(t, config{RedisURL: "redis://" + dead + "/0"})
	a := ta.dial(t, "/ws/rooms/r?name=ann", nil)
	b := ta.dial(t, "/ws/rooms/r?name=bob", nil)
	testutil.Eventually(t, func() bool { return ta.rooms.Count("r") == 2 }, "joins")
	for i := range 5 {
		m := fmt.Sprint("local ", i)
		testutil.NoErr(t, a.SendText(m))
		testutil.NoErr(t, b.ExpectText(m))
	}
	var p presenceResponse
	ta.getJSON(t, "/rooms/r/presence", &p)
	testutil.Equal(t, p.LocalOnly, true)
	testutil.Equal(t, len(p.Members), 2)

	// Other routes are unaffected.
	e := ta.dial(t, "/ws/echo", nil)
	testutil.NoErr(t, e.SendText("x"))
	testutil.NoErr(t, e.ExpectText("Echo: x"))

	testutil.Eventually(t, func() bool { return ta.statsNow(t).Redis == "down" }, "/stats does not say Redis is down")
	time.Sleep(1500 * time.Millisecond) // a few more pings, presence writes, publishes
	warnings := redisWarnings(ta.logs)
	testutil.Check(t, len(warnings) == 1, "want one warning about Redis, got:\n%s", strings.Join(warnings, "\n"))
	testutil.Check(t, strings.Contains(strings.ToLower(warnings[0]), "unreachable"), "unclear line: %s", warnings[0])
}

// redisServer runs a private redis-server on a free port, so that a test
// can stop and restart it.
type redisServer struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T, addr string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server is required (NEXIO_REQUIRE_REDIS=1): %v", err)
		}
		t.Skipf("no redis-server to start: %v", err)
	}
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		testutil.NoErr(t, err)
		addr = ln.Addr().String()
		ln.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	testutil.NoErr(t, cmd.Start())
	r := &redisServer{t: t, addr: addr, cmd: cmd}
	t.Cleanup(r.stop)
	testutil.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "redis-server on %s did not start", addr)
	return r
}

func (r *redisServer) stop() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// redisWarnings returns the log lines warning about Redis.
func redisWarnings(logs *logBuffer) []string {
	var out []string
	for _, l := range logs.lines() {
		if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) && strings.Contains(strings.ToLower(l), "redis") {
			out = append(out, l)
		}
	}
	return out
}

// crossUntil sends from a until b receives one of its probes, so that
// the rooms' subscriptions are known to be in place.
func crossUntil(t *testing.T, a, b *wstest.Conn, within time.Duration) {
	t.Helper()
	a.Timeout, b.Timeout = 100*time.Millisecond, 100*time.Millisecond
	defer func() { a.Timeout, b.Timeout = 0, 0 }()
	deadline := time.Now().Add(within)
	for i := 0; time.Now().Before(deadline); i++ {
		testutil.NoErr(t, a.SendText(fmt.Sprint("probe ", i)))
		if m, err := b.ReceiveText(); err == nil && strings.HasPrefix(m, "probe ") {
			drain(b)
			return
		}
	}
	t.Fatalf("no message crossed instances within %v", within)
}

// TestRedisOutageLater stops Redis under two running instances: each
// says so in one line, rooms keep working on each instance, and when
// Redis is back the instances reach each other again.
func TestRedisOutageLater(t *testing.T) {
	t.Parallel()
	rs := startRedisServer(t, "")
	url := "redis://" + rs.addr + "/0"
	one := start(t, config{RedisURL: url})
	two := start(t, config{RedisURL: url})
	a := one.dial(t, "/ws/rooms/r?name=ann", nil)
	a2 := one.dial(t, "/ws/rooms/r?name=amy", nil)
	b := two.dial(t, "/ws/rooms/r?name=bob", nil)
	testutil.Eventually(t, func() bool { return one.rooms.Count("r") == 2 && two.rooms.Count("r") == 1 }, "joins")
	crossUntil(t, a, b, 5*time.Second)
	drain(a2)

	rs.stop()
	testutil.Eventually(t, func() bool { return one.statsNow(t).Redis == "down" }, "/stats does not say Redis is down")
	for i := range 3 {
		m := fmt.Sprint("local ", i)
		testutil.NoErr(t, a.SendText(m))
		testutil.NoErr(t, a2.ExpectText(m))
	}
	var p presenceResponse
	one.getJSON(t, "/rooms/r/presence", &p)
	testutil.Equal(t, p.LocalOnly, true)
	testutil.Equal(t, len(p.Members), 2)
	time.Sleep(1500 * time.Millisecond)
	w := redisWarnings(one.logs)
	testutil.Check(t, len(w) == 1, "want one warning about Redis, got:\n%s", strings.Join(w, "\n"))
	testutil.Check(t, strings.Contains(w[0], "unreachable"), "unclear line: %s", w[0])

	startRedisServer(t, rs.addr) // the same address: Redis is back
	testutil.Eventually(t, func() bool { return one.statsNow(t).Redis == "up" }, "/stats does not say Redis is up")
	testutil.Check(t, len(one.logs.lines("redis reachable again")) == 1, "no line says Redis is back; log:\n%s", one.logs)
	drain(b)
	crossUntil(t, a, b, 15*time.Second)
	testutil.Check(t, len(redisWarnings(one.logs)) == 1, "more warnings after Redis came back:\n%s",
		strings.Join(redisWarnings(one.logs), "\n"))
}
