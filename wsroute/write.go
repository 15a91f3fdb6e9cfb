package wsroute

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
	"unsafe"

	"github.com/coder/websocket"
)

// SendText sends a text message. Safe to call from many goroutines.
//
// ctx bounds this call: it is checked before the write and again when
// the message reaches the socket; if it ends while the message is being
// written the connection is closed, since a partly written frame cannot
// be taken back. A send that ctx stopped before any of it was written
// returns an error wrapping ctx.Err() and leaves the connection open, and
// one whose last byte reached the socket succeeds, whenever ctx ends. A
// send waits for another send on the same connection to finish writing;
// that wait is bounded by the other send's progress, not by ctx.
//
// A write that makes no progress for Options.WriteTimeout closes the
// connection; a slow peer that keeps reading does not. A message larger
// than 64 KiB is sent as several frames (a fragmented message, as RFC 6455
// allows), so that pings and pongs can go out between them.
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
	a, stop, err := c.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if c.nc.direct {
		err = c.nc.writeMessages(msgs, a)
	} else {
		err = c.writeCoder(a, msgs...)
	}
	if err != nil {
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

func (c *Conn) send(ctx context.Context, typ MessageType, data []byte) error {
	a, stop, err := c.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if c.nc.direct {
		err = c.nc.writeMessages([]Message{{Type: typ, Data: data}}, a)
	} else {
		err = c.writeCoder(a, Message{Type: typ, Data: data})
	}
	if err != nil {
		return c.writeError(ctx, err)
	}
	c.msgsOut.Add(1)
	c.bytesOut.Add(int64(len(data)))
	return nil
}

// writeCoder sends msgs through coder/websocket, which frames (and
// compresses) them when an extension was negotiated; several are corked
// into one write. Sends are serialised here so that an abort (a) reaches
// only its own send.
func (c *Conn) writeCoder(a *sendAbort, msgs ...Message) error {
	nc := c.nc
	nc.sendMu.Lock()
	defer nc.sendMu.Unlock()
	if nc.closed.Load() {
		// A failed write may have left coder/websocket's message
		// writer locked: go no further.
		return net.ErrClosed
	}
	if a != nil {
		if !nc.startSend(a) {
			return errNotSent
		}
		defer nc.endSend()
	}
	if len(msgs) == 1 {
		return c.writeCoderMessage(msgs[0])
	}
	nc.cork()
	var err error
	for _, m := range msgs {
		if err = c.writeCoderMessage(m); err != nil {
			break
		}
	}
	if uerr := nc.uncork(); err == nil {
		err = uerr
	}
	return err
}

// writeCoderMessage writes one message through coder/websocket. One
// over maxFramePayload is streamed in pieces of that size: coder/websocket
// writes each piece as frames of its own (compressed ones, with deflate),
// and its pings and pongs pass between them, where a single frame would
// hold its frame lock for the whole message and make them wait.
func (c *Conn) writeCoderMessage(m Message) error {
	typ := websocket.MessageType(m.Type)
	if len(m.Data) <= maxFramePayload {
		return c.ws.Write(context.Background(), typ, m.Data)
	}
	w, err := c.ws.Writer(context.Background(), typ)
	if err != nil {
		return err
	}
	for p := m.Data; len(p) > 0; {
		n := min(len(p), maxFramePayload)
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return w.Close()
}

func nop() {}

// sendAbort stops one send when its context ends: at once if the send is
// writing (its write deadline is moved to the past), or when it reaches
// the wire if it is still waiting. A send whose last byte has reached
// the socket is past stopping, so its connection is never closed for it.
type sendAbort struct {
	nc    *netConn
	ended bool // guarded by nc.abortMu
}

// aLongTimeAgo is a write deadline in the past: it wakes a blocked write.
var aLongTimeAgo = time.Unix(1, 0)

func (a *sendAbort) abort() {
	nc := a.nc
	nc.abortMu.Lock()
	a.ended = true
	if nc.onWire == a {
		nc.abortReq.Store(true)
		nc.Conn.SetWriteDeadline(aLongTimeAgo)
		nc.deadlineAt.Store(0) // the next send moves it forward again
	}
	nc.abortMu.Unlock()
}

// startSend puts a on the wire, unless its context has ended.
func (c *netConn) startSend(a *sendAbort) bool {
	c.abortMu.Lock()
	defer c.abortMu.Unlock()
	if a.ended {
		return false
	}
	c.onWire = a
	return true
}

// endSend takes the send off the wire once its writes have returned. An
// abort that came after the last write set the deadline in the past;
// the next write sets its own before writing.
func (c *netConn) endSend() {
	c.abortMu.Lock()
	c.onWire = nil
	c.abortReq.Store(false)
	c.abortMu.Unlock()
}

// beginWrite checks that a write may start and, for a context that can
// end before the connection does, arms the abort of the write. Writes
// never pass a context to coder/websocket: the socket deadline bounds
// them, which costs no allocation per message.
func (c *Conn) beginWrite(ctx context.Context) (a *sendAbort, stop func(), err error) {
	if !c.accepted.Load() {
		return nil, nop, ErrNotAccepted
	}
	if c.nc.closed.Load() {
		return nil, nop, fmt.Errorf("%w: send after the connection ended", ErrClosed)
	}
	if c.ownDone(ctx) {
		return nil, nop, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nop, fmt.Errorf("wsroute: send: %w", err)
	}
	a = &sendAbort{nc: c.nc}
	cancel := context.AfterFunc(ctx, a.abort)
	return a, func() { cancel() }, nil
}

func (c *Conn) writeError(ctx context.Context, err error) error {
	if err == errNotSent {
		return fmt.Errorf("wsroute: send: %w", context.Cause(ctx))
	}
	if ctx.Err() != nil && !c.ownDone(ctx) {
		return fmt.Errorf("%w: send interrupted by its context: %w", ErrClosed, ctx.Err())
	}
	return newClosedError(err)
}
