package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

func init() {
	register("nexio-detach",
		"nexio as above, but each handler returns after Accept (and Join) with wsroute.Conn.Detach, and wsroute reads the connection; echo, fanout and idle",
		newNexioDetach)
	// Handshakes run the same code as nexio until the handler returns.
	implWorkloads["nexio-detach"] = []string{"echo", "fanout", "idle"}
}

// newNexioDetach is newNexio with every route detached: the handler
// accepts (and joins), hands the connection to wsroute with Detach and
// returns, so no handler goroutine waits on an idle member; the message
// function does what newNexio's loop body does.
func newNexioDetach() *impl {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The defaults, except in idle100k (idle100k.go).
	opts := &wsroute.Options{Logger: logger, PongTimeout: benchPongTimeout}
	h := hub.New(nexioHubOptions())
	chain := wsmw.Chain(
		wsmw.Logger(logger),
		wsmw.Recover,
		wsmw.MaxConns(wsmw.MaxConnsOptions{Total: 100_000, PerIP: 100_000}),
	)
	detach := func(join bool, fn wsroute.MessageFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			if join {
				if err := h.Join(c, roomName); err != nil {
					return err
				}
			}
			return c.Detach(ctx, fn)
		}
	}
	echo := opts.Handle(chain(detach(false, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		return c.Send(ctx, m.Type, m.Data)
	})))
	// room: text is read and dropped, as newNexio's ReceiveText loop does.
	room := opts.Handle(chain(detach(true, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		if m.Type != wsroute.MessageText {
			return wsroute.ErrWrongMessageType
		}
		return nil
	})))
	pub := opts.Handle(chain(detach(false, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		return h.Broadcast(ctx, roomName, wsroute.MessageText, m.Data)
	})))
	return &impl{
		echo:    echo,
		room:    room,
		pub:     pub,
		members: func() int { return h.Count(roomName) },
	}
}
