package wsroute_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *httptest.Server
)

// fuzzServer is shared by every input: its handler receives a message as
// text or JSON and reports what it got.
func fuzzServer() *httptest.Server {
	fuzzOnce.Do(func() {
		opts := &wsroute.Options{ReadLimit: 1 << 20}
		fuzzSrv = httptest.NewServer(opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			var v any
			if c.Query("mode") == "json" {
				if err := c.ReceiveJSON(ctx, &v); err != nil {
					return err
				}
				return c.SendJSON(ctx, v)
			}
			s, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			return c.SendText(ctx, s)
		}))
	})
	return fuzzSrv
}

// FuzzReceive sends arbitrary text messages through a real socket to
// ReceiveText and ReceiveJSON: valid UTF-8 comes back intact, invalid
// UTF-8 ends with 1007, undecodable JSON with 1007, and the server never
// answers 1011.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{"", "hello", `{"a":[1,2,{"b":null}]}`, "\xff\xfe", `{"a":`, "é", "\xed\xa0\x80", `"\ud800"`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		srv := fuzzServer()
		path := "/?mode=text"
		if asJSON {
			path = "/?mode=json"
		}
		ctx := testutil.Ctx(t)
		c, _, err := websocket.Dial(ctx, wsURL(srv, path), nil)
		testutil.NoErr(t, err)
		defer c.CloseNow()
		c.SetReadLimit(-1)
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, data))
		_, got, err := c.Read(ctx)
		code := websocket.CloseStatus(err)
		switch {
		case !utf8.Valid(data):
			testutil.Equal(t, code, websocket.StatusInvalidFramePayloadData)
		case asJSON && !json.Valid(data):
			testutil.Equal(t, code, websocket.StatusInvalidFramePayloadData)
		case asJSON:
			testutil.NoErr(t, err)
			testutil.Check(t, json.Valid(got), "echoed JSON is invalid: %q", got)
		default:
			testutil.NoErr(t, err)
			testutil.Equal(t, string(got), string(data))
		}
	})
}
