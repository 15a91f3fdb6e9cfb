package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	c := ta.dial(t, "/ws/echo", nil)
	for _, m := range []string{"hello", "", "héllo wörld", strings.Repeat("x", 60000)} {
		testutil.NoErr(t, c.SendText(m))
		testutil.NoErr(t, c.ExpectText("Echo: "+m))
	}
	testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, ""))
}

func TestUserParamIsDecoded(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	testCases := []struct {
		name, path, want string
	}{
		{name: "plain", path: "/ws/user/42", want: "Welcome, User 42!"},
		{name: "escaped space", path: "/ws/user/al%20ice", want: "Welcome, User al ice!"},
		{name: "unicode", path: "/ws/user/%C3%A9mile", want: "Welcome, User émile!"},
		{name: "escaped slash", path: "/ws/user/a%2Fb", want: "Welcome, User a/b!"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ta.dial(t, tc.path, nil)
			testutil.NoErr(t, c.ExpectText(tc.want))
			testutil.NoErr(t, c.ExpectClose(wsroute.StatusNormalClosure))
		})
	}
}

func TestLifecycleDisconnectsLogNoError(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})

	c := ta.dial(t, "/ws/lifecycle", nil)
	testutil.NoErr(t, c.SendText("hi"))
	testutil.NoErr(t, c.ExpectText("Received: hi"))
	testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, "bye"))

	c = ta.dial(t, "/ws/lifecycle", nil)
	testutil.NoErr(t, c.SendText("hi"))
	testutil.NoErr(t, c.ExpectText("Received: hi"))
	c.CloseNow() // vanishes without a close frame

	testutil.Eventually(t, func() bool { return len(ta.logs.lines("websocket closed", "/ws/lifecycle")) == 2 },
		"want two close lines; log:\n%s", ta.logs)
	testutil.Equal(t, len(ta.logs.lines("level=ERROR")), 0)
	testutil.Equal(t, len(ta.logs.lines("level=WARN")), 0)
}

func TestErrorRoute(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	c := ta.dial(t, "/ws/error", nil)
	code, reason, err := c.ReadClose()
	testutil.NoErr(t, err)
	testutil.Equal(t, code, wsroute.StatusInternalError)
	testutil.Equal(t, reason, "Something went wrong!")
}

// TestBinaryWhereTextIsExpected covers every route that reads text.
func TestBinaryWhereTextIsExpected(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	token := &wstest.DialOptions{Header: http.Header{"Authorization": {"valid_token"}}}
	testCases := []struct {
		path string
		opts *wstest.DialOptions
	}{
		{path: "/ws/echo"},
		{path: "/ws/lifecycle"},
		{path: "/ws/broadcast"},
		{path: "/ws/chat"},
		{path: "/ws/rooms/binary"},
		{path: "/ws/secure/echo", opts: token},
	}
	for _, tc := range testCases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			c := ta.dial(t, tc.path, tc.opts)
			testutil.NoErr(t, c.SendBytes([]byte{1, 2, 3}))
			testutil.NoErr(t, c.ExpectClose(wsroute.StatusUnsupportedData))
		})
	}
}

func TestBroadcastReachesOthersOnly(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	a := ta.dial(t, "/ws/broadcast", nil)
	b := ta.dial(t, "/ws/broadcast", nil)
	c := ta.dial(t, "/ws/broadcast", nil)
	other := ta.dial(t, "/ws/chat", nil)
	testutil.Eventually(t, func() bool { return ta.local.Count("broadcast") == 3 }, "3 broadcast members")

	testutil.NoErr(t, a.SendText("hi"))
	testutil.NoErr(t, b.ExpectText("Broadcast: hi"))
	testutil.NoErr(t, c.ExpectText("Broadcast: hi"))
	testutil.NoErr(t, a.ExpectNoMessage(100*time.Millisecond))
	testutil.NoErr(t, other.ExpectNoMessage(0))
}

func TestChatReachesOthersUnchanged(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	a := ta.dial(t, "/ws/chat", nil)
	b := ta.dial(t, "/ws/chat", nil)
	other := ta.dial(t, "/ws/broadcast", nil)
	testutil.Eventually(t, func() bool { return ta.local.Count("chat") == 2 }, "2 chat members")

	for _, m := range []string{"hi", `{"name":"x","text":"y"}`, "Broadcast: not me"} {
		testutil.NoErr(t, a.SendText(m))
		testutil.NoErr(t, b.ExpectText(m))
	}
	testutil.NoErr(t, b.SendText("back"))
	testutil.NoErr(t, a.ExpectText("back"))
	testutil.NoErr(t, a.ExpectNoMessage(100*time.Millisecond))
	testutil.NoErr(t, other.ExpectNoMessage(0))
}

func TestSecureEcho(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	header := func(k, v string) *wstest.DialOptions {
		return &wstest.DialOptions{Header: http.Header{k: {v}}}
	}
	testCases := []struct {
		name string
		path string
		opts *wstest.DialOptions
		ok   bool
	}{
		{name: "no token", path: "/ws/secure/echo"},
		{name: "bare header", path: "/ws/secure/echo", opts: header("Authorization", "valid_token"), ok: true},
		{name: "bearer header", path: "/ws/secure/echo", opts: header("Authorization", "Bearer valid_token"), ok: true},
		{name: "query", path: "/ws/secure/echo?token=valid_token", ok: true},
		{name: "cookie", path: "/ws/secure/echo", opts: header("Cookie", "token=valid_token"), ok: true},
		{name: "subprotocol", path: "/ws/secure/echo", opts: &wstest.DialOptions{Subprotocols: []string{"bearer", "valid_token"}}, ok: true},
		{name: "wrong header", path: "/ws/secure/echo", opts: header("Authorization", "Bearer nope")},
		{name: "wrong query", path: "/ws/secure/echo?token=nope"},
		{name: "wrong cookie", path: "/ws/secure/echo", opts: header("Cookie", "token=nope")},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range testCases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c := ta.dial(t, tc.path, tc.opts)
				if !tc.ok {
					code, reason, err := c.ReadClose()
					testutil.NoErr(t, err)
					testutil.Equal(t, code, 4001)
					testutil.Equal(t, reason, "Unauthorized")
					return
				}
				testutil.NoErr(t, c.SendText("secret"))
				testutil.NoErr(t, c.ExpectText("Echo: secret"))
				testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, ""))
			})
		}
	})
	// The token never reaches the log.
	testutil.Eventually(t, func() bool { return len(ta.logs.lines("/ws/secure/echo", "websocket")) >= len(testCases) },
		"a log line per connection; log:\n%s", ta.logs)
	testutil.Check(t, !strings.Contains(ta.logs.String(), "valid_token"), "the token was logged:\n%s", ta.logs)
}

// TestRateLimit runs with -rate 1: bursts of 2, then one per second,
// counted per client IP over every /ws/ route, before auth.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ta := start(t, config{Rate: 1})
	a := ta.dial(t, "/ws/echo", nil)
	b := ta.dial(t, "/ws/chat", nil)

	// Over the limit: 4003 on any route, even where auth would say 4001.
	for _, path := range []string{"/ws/secure/echo", "/ws/echo", "/ws/user/x"} {
		c := ta.dial(t, path, nil)
		code, reason, err := c.ReadClose()
		testutil.NoErr(t, err)
		testutil.Equal(t, code, 4003)
		testutil.Equal(t, reason, "Rate limit exceeded")
	}
	// Connections already open are not affected, and plain HTTP is not
	// counted.
	testutil.NoErr(t, a.SendText("still here"))
	testutil.NoErr(t, a.ExpectText("Echo: still here"))
	ta.statsNow(t)
	testutil.NoErr(t, b.ExpectNoMessage(0))

	// A second later there is a token again.
	time.Sleep(1100 * time.Millisecond)
	c := ta.dial(t, "/ws/echo", nil)
	testutil.NoErr(t, c.SendText("x"))
	testutil.NoErr(t, c.ExpectText("Echo: x"))
}

func TestStats(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	s := ta.statsNow(t)
	testutil.Equal(t, s.Connections, 0)
	testutil.Equal(t, len(s.Rooms), 0)
	testutil.Equal(t, s.Redis, "off")

	ta.dial(t, "/ws/rooms/a", nil)
	ta.dial(t, "/ws/rooms/a", nil)
	ta.dial(t, "/ws/rooms/b", nil)
	ta.dial(t, "/ws/echo", nil)
	ta.dial(t, "/ws/chat", nil)
	ta.dial(t, "/ws/broadcast", nil)
	ta.dial(t, "/ws/live/a", nil)
	testutil.Eventually(t, func() bool {
		s = ta.statsNow(t)
		return s.Connections == 7 && s.Rooms["a"] == 2 && s.Rooms["b"] == 1 && s.Chat == 1 && s.Broadcast == 1 && s.Live["a"] == 1
	}, "stats: %+v", s)
	testutil.Equal(t, len(s.Rooms), 2)
	testutil.Equal(t, len(s.Live), 1)

	// Refused connections are never counted.
	ta.dial(t, "/ws/secure/echo", nil).ExpectClose(4001)
	testutil.Equal(t, ta.statsNow(t).Connections, 7)
}

func TestPage(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := ta.srv.HTTP.Client().Get(ta.srv.HTTP.URL + path)
		testutil.NoErr(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		testutil.NoErr(t, err)
		return resp, string(body)
	}
	resp, body := get("/")
	testutil.Equal(t, resp.StatusCode, http.StatusOK)
	testutil.Check(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"), "content type %q", resp.Header.Get("Content-Type"))
	testutil.Check(t, strings.Contains(body, "<title>nexio chat</title>"), "page body:\n%s", body)
	testutil.Check(t, strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'"), "CSP %q", resp.Header.Get("Content-Security-Policy"))
	// Nothing is loaded from elsewhere.
	testutil.Check(t, !strings.Contains(body, "http://") && !strings.Contains(body, "https://"), "the page refers to another host")

	resp, body = get("/static/chat.js")
	testutil.Equal(t, resp.StatusCode, http.StatusOK)
	testutil.Check(t, strings.Contains(resp.Header.Get("Content-Type"), "javascript"), "content type %q", resp.Header.Get("Content-Type"))
	testutil.Check(t, strings.Contains(body, "/ws/live/"), "chat.js does not use /ws/live/")
	resp, _ = get("/static/chat.css")
	testutil.Check(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css"), "content type %q", resp.Header.Get("Content-Type"))

	// The icon, where the page links it and where browsers look anyway.
	for _, path := range []string{"/favicon.ico", "/static/favicon.svg"} {
		resp, body = get(path)
		testutil.Equal(t, resp.StatusCode, http.StatusOK)
		testutil.Equal(t, resp.Header.Get("Content-Type"), "image/svg+xml")
		testutil.Check(t, strings.HasPrefix(body, "<svg"), "%s is not the icon", path)
	}

	resp, _ = get("/nowhere")
	testutil.Equal(t, resp.StatusCode, http.StatusNotFound)
	resp, _ = get("/static/missing.js")
	testutil.Equal(t, resp.StatusCode, http.StatusNotFound)

	// A WebSocket route asked for a page answers 426 and runs nothing.
	resp, _ = get("/ws/echo")
	testutil.Equal(t, resp.StatusCode, http.StatusUpgradeRequired)
	testutil.Equal(t, resp.Header.Get("Upgrade"), "websocket")
}
