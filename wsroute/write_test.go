package wsroute_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
)

// TestSendContextEndingAroundTheWrite ends each send's context at a
// different moment around its write, thousands of times. A send whose
// last byte reached the socket must succeed and leave the connection
// open, whenever its context ends; a send stopped before its first byte
// returns the context's error and leaves the connection open too. Only a
// half-written message may close the connection, and a short message to
// a client that reads is never half written.
func TestSendContextEndingAroundTheWrite(t *testing.T) {
	t.Parallel()
	const n = 3000
	type outcome struct {
		ok  []int // the sends that went through
		err error // what ended the handler
	}
	sent := make(chan outcome, 1)
	srv := serve(t, &wsroute.Options{PingInterval: -1}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		var ok []int
		var err error
		defer func() { sent <- outcome{ok, err} }()
		for i := range n {
			sctx, cancel := context.WithCancel(context.Background())
			fired := make(chan struct{})
			go func() {
				// Spread the end of the context over the send's few
				// microseconds (a sweep of moments, not a wait).
				for start := time.Now(); time.Since(start) < time.Duration(i%50)*200*time.Nanosecond; {
				}
				cancel()
				close(fired)
			}()
			err = c.SendText(sctx, strconv.Itoa(i))
			<-fired
			switch {
			case err == nil:
				ok = append(ok, i)
			case errors.Is(err, context.Canceled) && !errors.Is(err, wsroute.ErrClosed):
				// Stopped before it was written: nothing sent, still open.
			default:
				err = fmt.Errorf("send %d (after %d went through): %w", i, len(ok), err)
				return err
			}
		}
		err = c.SendText(ctx, "end")
		return err
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	var got []int
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			o := <-sent
			t.Fatalf("the connection ended after %d messages (%d sends went through): %v; the server: %v", len(got), len(o.ok), err, o.err)
		}
		if string(data) == "end" {
			break
		}
		i, err := strconv.Atoi(string(data))
		testutil.NoErr(t, err)
		got = append(got, i)
	}
	o := <-sent
	ok := o.ok
	testutil.NoErr(t, o.err)
	testutil.Equal(t, fmt.Sprint(got), fmt.Sprint(ok))
	testutil.Check(t, len(ok) > 0 && len(ok) < n, "%d of %d sends went through: the context never ended during a send, or always did", len(ok), n)
}
