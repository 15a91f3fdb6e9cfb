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
	register("nexio",
		"nexio: wsroute.Options.Handle + wsmw.Chain(Logger, Recover, MaxConns) + hub.New(nil)",
		newNexio)
}

// newNexio is nexio the way its README and guide write a server: one
// shared wsroute.Options, every route behind the same three-middleware
// chain, and the in-memory hub with its default options (256-message /
// 1 MiB queue per member, disconnect slow consumers).
//
// The logger is a real slog text handler at the default level (Info), only
// writing to io.Discard: the cost of building each log record stays in the
// measurement, the terminal stays quiet.
func newNexio() *impl {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// benchPongTimeout and nexioHubOptions are the defaults (0, nil)
	// except in idle100k (idle100k.go).
	opts := &wsroute.Options{Logger: logger, PongTimeout: benchPongTimeout}
	h := hub.New(nexioHubOptions())
	// Logger first, as wsmw recommends, so it sees every refusal; the
	// MaxConns caps are far above what any workload opens.
	chain := wsmw.Chain(
		wsmw.Logger(logger),
		wsmw.Recover,
		wsmw.MaxConns(wsmw.MaxConnsOptions{Total: 100_000, PerIP: 100_000}),
	)

	// echo: each message goes back as it came, through Send (no string
	// conversion, like the raw coder loop).
	echo := opts.Handle(chain(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			if err := c.Send(ctx, msg.Type, msg.Data); err != nil {
				return err
			}
		}
		return nil
	}))

	// room: join, then loop on ReceiveText as a chat member does; the hub
	// removes the member when the handler returns.
	room := opts.Handle(chain(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := h.Join(c, roomName); err != nil {
			return err
		}
		for {
			if _, err := c.ReceiveText(ctx); err != nil {
				return err
			}
		}
	}))

	// pub: every message received is broadcast to the room.
	pub := opts.Handle(chain(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			if err := h.Broadcast(ctx, roomName, wsroute.MessageText, msg.Data); err != nil {
				return err
			}
		}
		return nil
	}))

	return &impl{
		echo:    echo,
		room:    room,
		pub:     pub,
		members: func() int { return h.Count(roomName) },
	}
}
