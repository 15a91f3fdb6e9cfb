package wsroute

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/coder/websocket"
)

// SendText sends a text message. Safe to call from many goroutines.
//
// ctx bounds this call: it is checked before the write, and if it ends
// while the message is being written the connection is closed, since a
// partly written frame cannot be taken back. A write that makes no
// progress for Options.WriteTimeout also closes the connection.
func (c *Conn) SendText(ctx context.Context, text string) error {
	return c.send(ctx, MessageText, unsafe.Slice(unsafe.StringData(text), len(text)))
}

// SendBytes sends a binary message. Safe to call from many goroutines.
// See SendText for how ctx bounds it.
func (c *Conn) SendBytes(ctx context.Context, data []byte) error {
	return c.send(ctx, MessageBinary, data)
}

// Send sends a message of the given type, MessageText or MessageBinary;
// any other type returns an error and nothing is sent.
func (c *Conn) Send(ctx context.Context, typ MessageType, data []byte) error {
	if err := checkSendable("Send", typ); err != nil {
		return err
	}
	return c.send(ctx, typ, data)
}

// SendJSON sends v encoded as JSON in a text message.
func (c *Conn) SendJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wsroute: SendJSON: %w", err)
	}
	return c.send(ctx, MessageText, b)
}

// SendBatch sends each message as its own WebSocket message, but hands
// them to the socket in one write: a burst costs one system call instead
// of one per message. Messages are sent in order; if one fails, the rest
// are not sent and the connection is closed. See SendText for ctx. A
// message whose type is neither MessageText nor MessageBinary returns an
// error before any of the batch is sent.
func (c *Conn) SendBatch(ctx context.Context, msgs []Message) error {
	for _, m := range msgs {
		if err := checkSendable("SendBatch", m.Type); err != nil {
			return err
		}
	}
	if len(msgs) == 1 {
		return c.send(ctx, msgs[0].Type, msgs[0].Data)
	}
	stop, err := c.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if c.nc.direct {
		if err := c.nc.writeMessages(msgs); err != nil {
			return c.writeError(ctx, err)
		}
		var n int64
		for _, m := range msgs {
			n += int64(len(m.Data))
		}
		c.msgsOut.Add(int64(len(msgs)))
		c.bytesOut.Add(n)
		return nil
	}
	c.nc.cork()
	var n int64
	for _, m := range msgs {
		if err = c.ws.Write(context.Background(), websocket.MessageType(m.Type), m.Data); err != nil {
			break
		}
		n += int64(len(m.Data))
	}
	if uerr := c.nc.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		return c.writeError(ctx, err)
	}
	c.msgsOut.Add(int64(len(msgs)))
	c.bytesOut.Add(n)
	return nil
}

func (c *Conn) send(ctx context.Context, typ MessageType, data []byte) error {
	stop, err := c.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if c.nc.direct {
		err = c.nc.writeMessages([]Message{{Type: typ, Data: data}})
	} else {
		err = c.ws.Write(context.Background(), websocket.MessageType(typ), data)
	}
	if err != nil {
		return c.writeError(ctx, err)
	}
	c.msgsOut.Add(1)
	c.bytesOut.Add(int64(len(data)))
	return nil
}

func nop() {}

// beginWrite checks that a write may start and, for a context that can
// end before the connection does, arms the abort of the write. Writes
// never pass a context to coder/websocket: the socket deadline bounds
// them, which costs no allocation per message.
func (c *Conn) beginWrite(ctx context.Context) (stop func(), err error) {
	if !c.accepted.Load() {
		return nop, ErrNotAccepted
	}
	if c.nc.closed.Load() {
		return nop, fmt.Errorf("%w: send after the connection ended", ErrClosed)
	}
	if c.ownDone(ctx) {
		return nop, nil
	}
	if err := ctx.Err(); err != nil {
		return nop, fmt.Errorf("wsroute: send: %w", err)
	}
	var finished atomic.Bool
	cancel := context.AfterFunc(ctx, func() {
		if !finished.Load() {
			c.nc.Close()
		}
	})
	return func() { finished.Store(true); cancel() }, nil
}

func (c *Conn) writeError(ctx context.Context, err error) error {
	if ctx.Err() != nil && !c.ownDone(ctx) {
		return fmt.Errorf("%w: send interrupted by its context: %w", ErrClosed, ctx.Err())
	}
	return fmt.Errorf("%w: %w", ErrClosed, err)
}
