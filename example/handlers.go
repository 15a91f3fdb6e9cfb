package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// The examples of Python Nexio's WebSocket module, one handler each, in
// the order docs/guide.md gives them next to their Python originals.

// echo is the docs' basic example (@app.ws_route("/ws/echo")): each text
// message m is answered with "Echo: m". A binary message ends the
// connection with 1003: ReceiveText returns ErrWrongMessageType, and
// returning it picks the code.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err // the client left (nothing more is sent), or 1003
		}
		if err := c.SendText(ctx, "Echo: "+msg); err != nil {
			return err
		}
	}
}

// user is the dynamic-parameter example (/ws/user/{user_id}): the
// parameter is the URL-decoded path segment, so /ws/user/al%20ice greets
// "al ice". Returning nil afterwards closes with 1000, as the Python
// handler does when it returns.
func user(ctx context.Context, c *wsroute.Conn) error {
	userID := c.Param("user_id")
	if err := c.Accept(ctx); err != nil {
		return err
	}
	return c.SendText(ctx, fmt.Sprintf("Welcome, User %s!", userID))
}

// lifecycle is the disconnection example (/ws/lifecycle): each text
// message m is answered with "Received: m". A client that closes or
// vanishes is a normal end, not an error: ErrClosed says so, and
// returning nil sends nothing more (the connection is already over) and
// logs nothing at error level.
func lifecycle(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if errors.Is(err, wsroute.ErrClosed) {
			return nil // the client disconnected
		}
		if err != nil {
			return err // a binary message: 1003
		}
		if err := c.SendText(ctx, "Received: "+msg); err != nil {
			return err
		}
	}
}

// failing is the error-handling example (/ws/error): it accepts, then
// fails, and closes with 1011 and the failure's text as the reason. A
// *wsroute.CloseError chooses the code and reason the client sees; any
// other error would close with 1011 "internal error" and keep its text
// in the server log, where it cannot leak internals to clients.
func failing(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	return &wsroute.CloseError{Code: wsroute.StatusInternalError, Reason: "Something went wrong!"}
}

// broadcaster serves the broadcasting example (/ws/broadcast): each text
// message m is sent as "Broadcast: m" to every other client of the route.
// The Python keeps a list of clients and writes to each in turn, so one
// slow client stalls everyone; a hub room gives each member its own
// bounded queue instead, and members leave by themselves when they end.
func broadcaster(h *hub.Hub) wsroute.HandlerFunc {
	return relay(h, "broadcast", func(m string) string { return "Broadcast: " + m })
}

// chat serves the full chat example (/ws/chat): each text message is sent
// unchanged to every other client of the route.
func chat(h *hub.Hub) wsroute.HandlerFunc {
	return relay(h, "chat", func(m string) string { return m })
}

// relay joins each client to room and sends every text message it
// receives, rewritten by format, to the room's other members.
func relay(h *hub.Hub, room string, format func(string) string) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := join(h, c, room); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if err := broadcastError(h.BroadcastText(ctx, room, format(msg), hub.Except(c))); err != nil {
				return err
			}
		}
	}
}

// join adds c to room. A client that already left is a normal end; a hub
// that is shutting down means the server is going away.
func join(h *hub.Hub, c *wsroute.Conn, room string) error {
	err := h.Join(c, room)
	switch {
	case errors.Is(err, hub.ErrConnClosed):
		return nil
	case errors.Is(err, hub.ErrClosed):
		return goingAway
	}
	return err
}

// broadcastError decides what a broadcast's error means for the sender:
// nil to go on.
func broadcastError(err error) error {
	switch {
	case errors.Is(err, hub.ErrPublish):
		// Redis is unreachable: this instance's members were served, and
		// the broker logs the outage once. The sender stays connected.
		return nil
	case errors.Is(err, hub.ErrClosed):
		return goingAway
	}
	return err
}

// goingAway ends a connection while the server shuts down.
var goingAway = &wsroute.CloseError{Code: wsroute.StatusGoingAway, Reason: "going away"}
