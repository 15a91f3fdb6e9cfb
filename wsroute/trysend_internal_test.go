package wsroute

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/internal/testutil"
)

// TestTrySendBatchNeverWaits fills the socket of a client that does not
// read with trySendBatch until it declines: it must decline rather than
// wait, what it accepted (the last one usually written only in part,
// then finished by the connection's own goroutine) must reach the
// client whole and in order, what it declined must never appear, and a
// send after it must follow them.
func TestTrySendBatchNeverWaits(t *testing.T) {
	conns := make(chan *Conn, 1)
	srv := httptest.NewServer((&Options{}).Handle(func(ctx context.Context, c *Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		c.CloseRead()
		conns <- c
		<-ctx.Done()
		return nil
	}))
	defer srv.Close()
	ctx := testutil.Ctx(t)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	testutil.NoErr(t, err)
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	c := <-conns

	msg := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, 24<<10)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	// Socket buffers hold a few MiB at most: 100,000 messages of 24 KiB
	// cannot all fit, so the loop ends on a refusal.
	sent := 0
	for sent < 100_000 && c.trySendBatch([]Message{{Type: MessageBinary, Data: msg(sent)}}) {
		sent++
	}
	testutil.Check(t, sent > 0 && sent < 100_000, "trySendBatch accepted %d messages into a socket nobody reads", sent)
	errc := make(chan error, 1)
	go func() { errc <- c.SendText(ctx, "after") }()

	for i := range sent {
		typ, data, err := ws.Read(ctx)
		testutil.NoErr(t, err)
		testutil.Check(t, typ == websocket.MessageBinary && bytes.Equal(data, msg(i)),
			"message %d of %d arrived as %v of %d bytes, starting % x", i, sent, typ, len(data), data[:min(len(data), 8)])
	}
	typ, data, err := ws.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Check(t, typ == websocket.MessageText && string(data) == "after",
		"after the %d accepted messages came %v %q, not the send that followed them", sent, typ, data[:min(len(data), 8)])
	testutil.NoErr(t, <-errc)
	testutil.Check(t, c.Stats().MessagesOut == int64(sent)+1, "Stats counts %d messages out, want %d", c.Stats().MessagesOut, sent+1)
}

// TestTrySendBatchDeclinesWithCompression: with permessage-deflate,
// coder/websocket frames the messages, so trySendBatch leaves them to
// SendBatch.
func TestTrySendBatchDeclinesWithCompression(t *testing.T) {
	conns := make(chan *Conn, 1)
	srv := httptest.NewServer((&Options{Compression: CompressionContextTakeover}).Handle(func(ctx context.Context, c *Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		c.CloseRead()
		conns <- c
		<-ctx.Done()
		return nil
	}))
	defer srv.Close()
	ctx := testutil.Ctx(t)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	testutil.NoErr(t, err)
	defer ws.CloseNow()
	c := <-conns
	testutil.Check(t, !c.nc.direct, "deflate was not negotiated")
	testutil.Check(t, !c.trySendBatch([]Message{{Type: MessageText, Data: []byte("x")}}), "trySendBatch wrote around coder/websocket's compression")
}
