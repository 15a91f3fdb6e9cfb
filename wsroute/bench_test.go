package wsroute_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// The benchmarks put a send and a receive through Conn next to the same
// operation on raw coder/websocket, so the layer's cost is visible.
// Allocations are counted in the whole process, client included; the
// difference between the pairs is the layer's.

var payload = []byte("0123456789012345678901234567890123456789012345678901234567890123") // 64 B

func benchServer(b *testing.B, raw bool, handler func(ctx context.Context, send func([]byte) error, recv func() error)) *httptest.Server {
	var h http.Handler
	if raw {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(64 << 10)
			ctx := r.Context()
			handler(ctx,
				func(p []byte) error { return c.Write(ctx, websocket.MessageText, p) },
				func() error { _, _, err := c.Read(ctx); return err })
		})
	} else {
		h = wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			handler(ctx,
				func(p []byte) error { return c.SendBytes(ctx, p) },
				func() error { _, err := c.ReceiveBytes(ctx); return err })
			return nil
		})
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv
}

func benchSend(b *testing.B, raw bool) {
	start := make(chan int)
	srv := benchServer(b, raw, func(ctx context.Context, send func([]byte) error, recv func() error) {
		n := <-start
		for range n {
			if send(payload) != nil {
				return
			}
		}
		recv()
	})
	c := dial(b, srv, "/", nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	start <- b.N
	for range b.N {
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close(websocket.StatusNormalClosure, "")
}

func benchReceive(b *testing.B, raw bool) {
	done := make(chan struct{})
	srv := benchServer(b, raw, func(ctx context.Context, send func([]byte) error, recv func() error) {
		for recv() == nil {
		}
		close(done)
	})
	c := dial(b, srv, "/", nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
			b.Fatal(err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	<-done
	b.StopTimer()
}

func BenchmarkSend(b *testing.B) {
	b.Run("wsroute", func(b *testing.B) { benchSend(b, false) })
	b.Run("coder", func(b *testing.B) { benchSend(b, true) })
}

func BenchmarkReceive(b *testing.B) {
	b.Run("wsroute", func(b *testing.B) { benchReceive(b, false) })
	b.Run("coder", func(b *testing.B) { benchReceive(b, true) })
}

func BenchmarkSendBatch100(b *testing.B) {
	msgs := make([]wsroute.Message, 100)
	for i := range msgs {
		msgs[i] = wsroute.Message{Type: wsroute.MessageText, Data: payload}
	}
	start := make(chan int)
	srv := serve(b, nil, "/", func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		n := <-start
		for range n {
			if err := c.SendBatch(ctx, msgs); err != nil {
				return err
			}
		}
		_, err := c.ReceiveText(ctx)
		return err
	})
	c := dial(b, srv, "/", nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload) * len(msgs)))
	b.ResetTimer()
	start <- b.N
	for range b.N * len(msgs) {
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close(websocket.StatusNormalClosure, "")
}

// BenchmarkHandshake opens and drops connections: a handshake through
// wsroute next to the same on raw coder/websocket (client included, so
// the difference is the layer's).
func BenchmarkHandshake(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "wsroute"
		if raw {
			name = "coder"
		}
		b.Run(name, func(b *testing.B) {
			srv := benchServer(b, raw, func(ctx context.Context, send func([]byte) error, recv func() error) {
				recv()
			})
			url := "ws" + strings.TrimPrefix(srv.URL, "http")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					b.Fatal(err)
				}
				c.CloseNow()
			}
		})
	}
}
