package wsroute_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
)

// TestSendUnknownMessageType sends messages of types that are neither
// text nor binary (0 would be a continuation frame, 3 a reserved opcode)
// and reads the raw socket: each call must fail before anything is
// written, so the first frame the client sees is the text that follows.
func TestSendUnknownMessageType(t *testing.T) {
	t.Parallel()
	for _, mode := range []wsroute.CompressionMode{wsroute.CompressionDisabled, wsroute.CompressionContextTakeover} {
		t.Run(map[wsroute.CompressionMode]string{wsroute.CompressionDisabled: "plain", wsroute.CompressionContextTakeover: "deflate"}[mode], func(t *testing.T) {
			t.Parallel()
			errs := make(chan []error, 1)
			srv := serve(t, &wsroute.Options{Compression: mode}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				errs <- []error{
					c.Send(ctx, 0, []byte("continuation")),
					c.Send(ctx, 3, []byte("reserved")),
					c.SendBatch(ctx, []wsroute.Message{{Type: wsroute.MessageText, Data: []byte("a")}, {Type: 11, Data: []byte("b")}}),
					c.SendBatch(ctx, []wsroute.Message{{Type: -1, Data: []byte("c")}}),
				}
				if err := c.SendText(ctx, "ok"); err != nil {
					return err
				}
				_, _, err := c.Receive(ctx)
				return err
			})
			h := http.Header{}
			if mode != wsroute.CompressionDisabled {
				h.Set("Sec-WebSocket-Extensions", "permessage-deflate")
			}
			nc := rawDial(t, srv, "/ws", h)
			defer nc.Close()
			for i, err := range <-errs {
				testutil.Check(t, err != nil, "call %d: got nil, want an error for the unknown type", i)
				if err != nil {
					testutil.Check(t, strings.Contains(err.Error(), "MessageText or MessageBinary"),
						"call %d: error %q does not say which types to use", i, err)
				}
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			op, payload, err := readFrame(bufio.NewReader(nc))
			testutil.NoErr(t, err)
			testutil.Equal(t, op, byte(1))
			testutil.Equal(t, string(payload), "ok")
		})
	}
}
