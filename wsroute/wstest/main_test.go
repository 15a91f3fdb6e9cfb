package wstest_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/wsroute"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Tiny assertion helpers: tests read as plain Go.

// echo is the Nexio echo example.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, "Echo: "+msg); err != nil {
			return err
		}
	}
}
