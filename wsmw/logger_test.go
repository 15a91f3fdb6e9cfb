package wsmw_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// jsonLog collects JSON log lines, one map per line.
type jsonLog struct {
	logBuffer
}

func newJSONLog() (*slog.Logger, *jsonLog) {
	var b jsonLog
	return slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// lines returns the lines whose msg starts with "websocket ".
func (b *jsonLog) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		testutil.NoErr(t, json.Unmarshal([]byte(l), &m))
		if strings.HasPrefix(m["msg"].(string), "websocket ") {
			out = append(out, m)
		}
	}
	return out
}

// endLogged waits for the line that ends a connection.
func (b *jsonLog) endLogged(t testing.TB) []map[string]any {
	t.Helper()
	testutil.Eventually(t, func() bool {
		s := b.String()
		return strings.Contains(s, `"msg":"websocket closed"`) || strings.Contains(s, `"msg":"websocket refused"`)
	}, "no end line logged: %s", b.String())
	return b.lines(t)
}

func TestLoggerAcceptedConnection(t *testing.T) {
	t.Parallel()
	l, logs := newJSONLog()
	srv := serve(t, nil, echo, wsmw.Logger(l))
	c := dial(t, srv, "/ws?room=lobby", &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {"203.0.113.7"}}})
	for _, m := range []string{"a", "bb", "ccc"} {
		roundTrip(t, c, m)
	}
	lines := logs.lines(t)
	testutil.Equal(t, len(lines), 1)
	acc := lines[0]
	testutil.Equal(t, acc["msg"], any("websocket accepted"))
	testutil.Equal(t, acc["level"], any("INFO"))
	testutil.Equal(t, acc["route"], any("/ws"))
	testutil.Equal(t, acc["path"], any("/ws"))
	testutil.Equal(t, acc["query"], any("room=lobby"))
	testutil.Equal(t, acc["remote"], any("203.0.113.7"))
	testutil.Check(t, acc["conn"] != "", "no connection ID")
	testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, "bye"))

	lines = logs.endLogged(t)
	testutil.Equal(t, len(lines), 2)
	end := lines[1]
	testutil.Equal(t, end["msg"], any("websocket closed"))
	testutil.Equal(t, end["level"], any("INFO"))
	testutil.Equal(t, end["conn"], acc["conn"])
	testutil.Equal(t, end["code"], any(1000.0))
	testutil.Equal(t, end["reason"], any("bye"))
	testutil.Equal(t, end["msgs_in"], any(3.0))
	testutil.Equal(t, end["bytes_in"], any(6.0))
	testutil.Equal(t, end["msgs_out"], any(3.0))
	testutil.Equal(t, end["bytes_out"], any(float64(len("Echo: a")+len("Echo: bb")+len("Echo: ccc"))))
	testutil.Check(t, end["duration"] != nil, "no duration")
	_, hasErr := end["error"]
	testutil.Check(t, !hasErr, "a client leaving was logged as an error: %v", end["error"])
}

func TestLoggerOutcomes(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name    string
		mws     []wsmw.Middleware
		handler wsroute.HandlerFunc
		want    map[string]any // fields of the last line
		lines   int
	}{
		{
			name:  "refused by Auth with 4001",
			mws:   []wsmw.Middleware{wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})},
			want:  map[string]any{"msg": "websocket refused", "level": "INFO", "status": 101.0, "code": 4001.0, "reason": "Unauthorized", "error": "wsmw: unauthorized: no token"},
			lines: 1,
		},
		{
			name:  "refused by Auth with 401",
			mws:   []wsmw.Middleware{wsmw.Auth(wsmw.AuthOptions{Token: "valid_token", RejectHTTP: true})},
			want:  map[string]any{"msg": "websocket refused", "level": "INFO", "status": 401.0, "error": "wsmw: unauthorized: no token"},
			lines: 1,
		},
		{
			name:    "middleware that neither accepts nor refuses",
			handler: func(ctx context.Context, c *wsroute.Conn) error { return nil },
			want:    map[string]any{"msg": "websocket refused", "level": "INFO", "status": 403.0},
			lines:   1,
		},
		{
			name: "handler error",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return errors.New("database down")
			},
			want:  map[string]any{"msg": "websocket closed", "level": "ERROR", "code": 1011.0, "reason": "internal error", "error": "database down"},
			lines: 2,
		},
		{
			name: "handler closes with a code",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return c.Close(1011, "Something went wrong!")
			},
			want:  map[string]any{"msg": "websocket closed", "level": "ERROR", "code": 1011.0, "reason": "Something went wrong!"},
			lines: 2,
		},
		{
			name: "handler panics",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				panic("handler bug")
			},
			want:  map[string]any{"msg": "websocket closed", "level": "ERROR", "code": 1011.0, "reason": "internal error", "error": "wsroute: handler panicked: handler bug"},
			lines: 2,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, logs := newJSONLog()
			h := tc.handler
			if h == nil {
				h = echo
			}
			srv := serve(t, nil, h, append([]wsmw.Middleware{wsmw.Logger(l)}, tc.mws...)...)
			_, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			testutil.NoErr(t, err)
			lines := logs.endLogged(t)
			testutil.Equal(t, len(lines), tc.lines)
			last := lines[len(lines)-1]
			for k, v := range tc.want {
				testutil.Equal(t, last[k], v)
			}
		})
	}
}

// TestLoggerKeepsSecretsOut sends a token every way Auth reads one, right
// and wrong, and looks for it in everything logged: the Logger's lines
// and wsroute's own.
func TestLoggerKeepsSecretsOut(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-T0KEN"
	testCases := []struct {
		name   string
		path   string
		header http.Header
		protos []string
	}{
		{name: "Bearer header", header: http.Header{"Authorization": {"Bearer " + secret}}},
		{name: "bare header", header: http.Header{"Authorization": {secret}}},
		{name: "query", path: "?room=lobby&token=" + secret},
		{
			name:   "query, other names",
			path:   "?access_token=" + secret + "&api_key=" + secret + "&Password=" + secret,
			header: http.Header{"Authorization": {"Bearer " + secret}},
		},
		{name: "cookie", header: http.Header{"Cookie": {"token=" + secret}}},
		{name: "subprotocol", protos: []string{"bearer", secret}},
	}
	for _, tc := range testCases {
		for _, valid := range []bool{true, false} {
			name := tc.name + "/valid"
			if !valid {
				name = tc.name + "/invalid"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				l, logs := newJSONLog()
				want := secret
				if !valid {
					want = "something else"
				}
				srv := serve(t, &wsroute.Options{Logger: l}, echo, wsmw.Logger(l),
					wsmw.Auth(wsmw.AuthOptions{Token: want}))
				ctx := testutil.Ctx(t)
				c, _, err := websocket.Dial(ctx, wsURL(srv, "/ws"+tc.path),
					&websocket.DialOptions{HTTPHeader: tc.header, Subprotocols: tc.protos})
				testutil.NoErr(t, err)
				if valid {
					roundTrip(t, c, "hi")
					c.Close(websocket.StatusNormalClosure, "")
				} else {
					readClose(t, c)
				}
				c.CloseNow()
				logs.endLogged(t)
				out := logs.String()
				testutil.Check(t, !strings.Contains(out, secret), "the token leaked into the log:\n%s", out)
				if strings.Contains(tc.path, "room=") {
					testutil.Check(t, strings.Contains(out, "room=lobby&token=REDACTED"), "query not logged as expected:\n%s", out)
				}
			})
		}
	}
}

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	testutil.Equal(t, wsmw.RedactQuery("s=abc&room=x&t=1", "s", "t"), "s=REDACTED&room=x&t=REDACTED")
	testCases := []struct{ in, want string }{
		{"", ""},
		{"room=lobby", "room=lobby"},
		{"token=abc", "token=REDACTED"},
		{"room=a&token=abc&x=1", "room=a&token=REDACTED&x=1"},
		{"TOKEN=abc", "TOKEN=REDACTED"},
		{"access_token=a&id_token=b&authorization=c&api_key=d&secret=e&password=f&jwt=g&sig=h", "access_token=REDACTED&id_token=REDACTED&authorization=REDACTED&api_key=REDACTED&secret=REDACTED&password=REDACTED&jwt=REDACTED&sig=REDACTED"},
		{"to%6Ben=abc", "to%6Ben=REDACTED"},
		{"%zz=abc", "%zz=REDACTED"},
		{"token", "token"},
		{"token=", "token=REDACTED"},
		{"a=1&&b=2", "a=1&&b=2"},
	}
	for _, tc := range testCases {
		testutil.Equal(t, wsmw.RedactQuery(tc.in), tc.want)
	}
}

func TestLoggerNilUsesDefault(t *testing.T) {
	// Not parallel: it swaps slog's default logger.
	l, logs := newJSONLog()
	old := slog.Default()
	slog.SetDefault(l)
	defer slog.SetDefault(old)
	srv := serve(t, nil, echo, wsmw.Logger(nil))
	c := dial(t, srv, "/ws", nil)
	roundTrip(t, c, "x")
	c.Close(websocket.StatusNormalClosure, "")
	logs.endLogged(t)
}

// TestLoggerRedactsAuthsRenamedQuery: Auth tells Logger which query
// parameter holds its token, whatever its name.
func TestLoggerRedactsAuthsRenamedQuery(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-T0KEN"
	for _, valid := range []bool{true, false} {
		l, logs := newJSONLog()
		want := secret
		if !valid {
			want = "other"
		}
		srv := serve(t, &wsroute.Options{Logger: l}, whoAmI, wsmw.Logger(l),
			wsmw.Auth(wsmw.AuthOptions{Token: want, Query: "s"}))
		_, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws?s="+secret+"&room=lobby"), nil)
		testutil.NoErr(t, err)
		logs.endLogged(t)
		out := logs.String()
		testutil.Check(t, !strings.Contains(out, secret), "the token leaked into the log:\n%s", out)
		testutil.Check(t, strings.Contains(out, "s=REDACTED&room=lobby"), "query not logged as expected:\n%s", out)
	}
}

// TestLoggerClientGoneIsNotAnError: a client that hangs up while the
// handler decides is the client's doing: no response is written (status
// 0) and the line is at Info.
func TestLoggerClientGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	l, logs := newJSONLog()
	deciding := make(chan struct{})
	srv := serve(t, &wsroute.Options{Logger: l}, func(ctx context.Context, c *wsroute.Conn) error {
		close(deciding)
		<-c.Request().Context().Done() // the client hangs up meanwhile
		return c.Accept(ctx)
	}, wsmw.Logger(l))
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	testutil.NoErr(t, err)
	_, err = nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	testutil.NoErr(t, err)
	select { // hang up once the handler is deciding
	case <-deciding:
	case <-testutil.Ctx(t).Done():
		t.Fatal("the handler never ran")
	}
	nc.Close()
	lines := logs.endLogged(t)
	last := lines[len(lines)-1]
	testutil.Equal(t, last["msg"], any("websocket refused"))
	testutil.Equal(t, last["status"], any(0.0))
	testutil.Equal(t, last["level"], any("INFO"))
}

// With AddSource, both lines name the place in Logger that logged them,
// as slog.Logger.LogAttrs called there would.
func TestLoggerSource(t *testing.T) {
	t.Parallel()
	var b jsonLog
	l := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{AddSource: true}))
	srv := serve(t, nil, echo, wsmw.Logger(l))
	for range 2 { // the second connection's lines use the call sites found by the first
		c := dial(t, srv, "/ws", nil)
		roundTrip(t, c, "a")
		testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, ""))
		b.endLogged(t)
	}
	testutil.Eventually(t, func() bool { return len(b.lines(t)) == 4 }, "lines: %s", b.String())
	for i, line := range b.lines(t) {
		src, _ := line["source"].(map[string]any)
		fn, _ := src["function"].(string)
		file, _ := src["file"].(string)
		want := "github.com/nexio-go/nexio/wsmw.(*connLog).accepted"
		if i%2 == 1 {
			want = "github.com/nexio-go/nexio/wsmw.logEnd"
		}
		testutil.Equal(t, fn, want)
		testutil.Check(t, strings.HasSuffix(file, "/wsmw/logger.go"), "line %d: source file %q", i, file)
	}
}
