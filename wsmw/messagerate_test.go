package wsmw_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

func TestMessageRate(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name      string
		opts      wsmw.MessageRateOptions
		send      int
		pause     time.Duration // between messages
		wantEchos int           // -1: all of them, then a normal close
	}{
		{"burst then refused", wsmw.MessageRateOptions{PerSecond: 1e-9, Burst: 5}, 10, 0, 5},
		{"burst defaults to PerSecond rounded up", wsmw.MessageRateOptions{PerSecond: 2.5}, 10, 0, 3},
		{"under the rate", wsmw.MessageRateOptions{PerSecond: 1000, Burst: 10}, 10, 0, -1},
		{"refills over time", wsmw.MessageRateOptions{PerSecond: 50, Burst: 1}, 5, 40 * time.Millisecond, -1},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			handlerErr := make(chan error, 2)
			srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
				err := echo(ctx, c)
				handlerErr <- err
				return err
			}, wsmw.MessageRate(tc.opts))
			// Two connections: each has its own budget.
			for range 2 {
				c := dial(t, srv, "/ws", nil)
				ctx := testutil.Ctx(t)
				echos := 0
				if tc.wantEchos < 0 {
					// One at a time, each sent a pause after the server
					// handled the previous one.
					for i := range tc.send {
						testutil.Equal(t, roundTrip(t, c, fmt.Sprint(i)), fmt.Sprint("Echo: ", i))
						time.Sleep(tc.pause)
					}
					c.Close(websocket.StatusNormalClosure, "")
					err := <-handlerErr
					testutil.Check(t, !errors.Is(err, wsmw.ErrMessageRate), "refused under the rate: %v", err)
					continue
				}
				for i := range tc.send {
					c.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i)))
				}
				var err error
				for {
					if _, _, err = c.Read(ctx); err != nil {
						break
					}
					echos++
				}
				testutil.Equal(t, echos, tc.wantEchos)
				testutil.Equal(t, websocket.CloseStatus(err), websocket.StatusPolicyViolation)
				var ce websocket.CloseError
				testutil.Check(t, errors.As(err, &ce) && ce.Reason == "message rate exceeded", "close: %v", err)
				err = <-handlerErr
				testutil.Check(t, errors.Is(err, wsmw.ErrMessageRate), "handler's error %v does not wrap ErrMessageRate", err)
				testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "handler's error %v does not wrap ErrClosed", err)
			}
		})
	}
}

func TestMessageRateInvalidOptionsPanic(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		opts wsmw.MessageRateOptions
		want string
	}{
		{wsmw.MessageRateOptions{}, "wsmw: MessageRateOptions.PerSecond must be positive"},
		{wsmw.MessageRateOptions{PerSecond: -3}, "wsmw: MessageRateOptions.PerSecond must be positive"},
		{wsmw.MessageRateOptions{PerSecond: math.NaN()}, "wsmw: MessageRateOptions.PerSecond must be positive"},
		{wsmw.MessageRateOptions{PerSecond: 1, Burst: -1}, "wsmw: MessageRateOptions.Burst must not be negative"},
	}
	for _, tc := range testCases {
		mustPanic(t, tc.want, func() { wsmw.MessageRate(tc.opts) })
	}
}
