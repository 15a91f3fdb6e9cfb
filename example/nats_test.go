package main

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// natsURL returns the NATS the tests may use, skipping the test when
// none answers (unless NEXIO_REQUIRE_NATS=1, as in CI).
func natsURL(t *testing.T) string {
	t.Helper()
	addr := "127.0.0.1:4222"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("NEXIO_REQUIRE_NATS") == "1" {
			t.Fatalf("NATS is required (NEXIO_REQUIRE_NATS=1) but %s does not answer: %v", addr, err)
		}
		t.Skipf("no NATS on %s (start one with `nats-server -js`): %v", addr, err)
	}
	c.Close()
	return "nats://" + addr
}

// TestRoomsSpanInstancesOnNATS runs two instances on one NATS: a room
// spans both and presence lists both members, as on Redis.
func TestRoomsSpanInstancesOnNATS(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	one := start(t, config{NATSURL: url})
	two := start(t, config{NATSURL: url})
	room := randomName("n-")

	a := one.dial(t, "/ws/rooms/"+room+"?name=ann", nil)
	b := two.dial(t, "/ws/rooms/"+room+"?name=bob", nil)
	testutil.Eventually(t, func() bool { return one.rooms.Count(room) == 1 && two.rooms.Count(room) == 1 }, "joins: %d %d", one.rooms.Count(room), two.rooms.Count(room))
	roomsCross(t, a, b)

	testutil.NoErr(t, a.SendText(`{"name":"ann","text":"hello bob"}`))
	testutil.NoErr(t, b.ExpectText(`{"name":"ann","text":"hello bob"}`))
	testutil.NoErr(t, b.SendText("hello ann"))
	testutil.NoErr(t, a.ExpectText("hello ann"))
	testutil.NoErr(t, a.ExpectNoMessage(200*time.Millisecond))

	var p presenceResponse
	testutil.Eventually(t, func() bool {
		one.getJSON(t, "/rooms/"+room+"/presence", &p)
		return len(p.Members) == 2
	}, "presence: %+v", p)
	testutil.Equal(t, p.Members[0].Name, "ann")
	testutil.Equal(t, p.Members[0].Node, one.rooms.Node())
	testutil.Equal(t, p.Members[1].Name, "bob")
	testutil.Equal(t, p.Members[1].Node, two.rooms.Node())
	testutil.Equal(t, one.statsNow(t).NATS, "up")
	testutil.Equal(t, one.statsNow(t).Redis, "off")
}

// -redis and -nats together are refused: one broker carries the rooms.
func TestRedisAndNATSAreExclusive(t *testing.T) {
	t.Parallel()
	_, err := newApp(config{RedisURL: "redis://127.0.0.1:6379/0", NATSURL: "nats://127.0.0.1:4222"})
	testutil.Check(t, err != nil && strings.Contains(err.Error(), "exclusive"), "newApp with both: %v", err)
}
