package wsroute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"sync"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// readBufs holds the buffers messages are read into, so that an idle
// connection keeps none.
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledRead = 256 << 10

func putReadBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledRead {
		b.Reset()
		readBufs.Put(b)
	}
}

// Receive waits for the next data message and returns its type and data.
// The data is the caller's to keep.
//
// ctx bounds this call. If ctx ends before a message has arrived the
// connection is closed (a half-read frame cannot be resumed) and the error
// wraps both ErrClosed and ctx.Err(); the handler's own context, which
// ends with the connection, never causes that.
//
// A text message that is not valid UTF-8 fails the connection with 1007
// (ErrInvalidUTF8); one over Options.ReadLimit fails it with 1009
// (ErrMessageTooBig); a malformed frame with 1002 or no code (ErrProtocol).
// When the peer closes or vanishes the error wraps ErrClosed, and
// CloseStatus reports the peer's code.
func (c *Conn) Receive(ctx context.Context) (MessageType, []byte, error) {
	typ, buf, err := c.read(ctx)
	if err != nil {
		return 0, nil, err
	}
	b := bytes.Clone(buf.Bytes())
	if b == nil {
		b = []byte{}
	}
	putReadBuf(buf)
	return typ, b, nil
}

// ReceiveText waits for the next message, which must be text: a binary
// message is consumed and ErrWrongMessageType returned.
func (c *Conn) ReceiveText(ctx context.Context) (string, error) {
	typ, buf, err := c.read(ctx)
	if err != nil {
		return "", err
	}
	defer putReadBuf(buf)
	if typ != MessageText {
		return "", fmt.Errorf("%w: got a binary message where text was expected", ErrWrongMessageType)
	}
	return buf.String(), nil
}

// ReceiveBytes waits for the next message, which must be binary: a text
// message is consumed and ErrWrongMessageType returned.
func (c *Conn) ReceiveBytes(ctx context.Context) ([]byte, error) {
	typ, data, err := c.Receive(ctx)
	if err != nil {
		return nil, err
	}
	if typ != MessageBinary {
		return nil, fmt.Errorf("%w: got a text message where binary was expected", ErrWrongMessageType)
	}
	return data, nil
}

// ReceiveJSON waits for the next message, which must be a text message
// holding JSON, and decodes it into v. A message that does not decode
// returns an error wrapping ErrInvalidJSON; the connection stays open.
func (c *Conn) ReceiveJSON(ctx context.Context, v any) error {
	typ, buf, err := c.read(ctx)
	if err != nil {
		return err
	}
	defer putReadBuf(buf)
	if typ != MessageText {
		return fmt.Errorf("%w: got a binary message where JSON text was expected", ErrWrongMessageType)
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	return nil
}

// Messages returns an iterator over incoming messages for a range loop.
// The loop ends after yielding the error that ended it (with a zero
// Message); a handler usually returns that error.
//
//	for msg, err := range c.Messages(ctx) {
//		if err != nil {
//			return err
//		}
//		...
//	}
func (c *Conn) Messages(ctx context.Context) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for {
			typ, data, err := c.Receive(ctx)
			if err != nil {
				yield(Message{}, err)
				return
			}
			if !yield(Message{Type: typ, Data: data}, nil) {
				return
			}
		}
	}
}

// CloseRead is for handlers that only send (a room subscriber, a feed).
// It starts one goroutine that reads the connection, so pings are
// answered and the peer's close or disappearance is noticed at once:
// Done closes and sends fail fast. A data message from the peer closes
// the connection with 1008 (policy violation). The goroutine ends when
// the connection does. Calling Receive after CloseRead is a mistake.
// CloseRead is idempotent and does nothing before Accept.
func (c *Conn) CloseRead() {
	if !c.accepted.Load() || !c.closeRead.CompareAndSwap(false, true) {
		return
	}
	go func() {
		_, buf, err := c.read(c.ctx)
		switch {
		case err == nil:
			putReadBuf(buf)
			c.Close(StatusPolicyViolation, "unexpected data message")
		case c.peerCode.Load() == 0 && isDisconnect(err):
			// The peer vanished without a close frame: coder/websocket
			// leaves the socket open then, so close it for Done to fire
			// now rather than at the next failed ping.
			c.nc.Close()
		}
	}()
}

// read reads the next data message into a pooled buffer.
func (c *Conn) read(ctx context.Context) (MessageType, *bytes.Buffer, error) {
	return c.readNext(ctx, false)
}

// readNext is read. With idle (a detached connection's reader, see
// detach.go) it returns errIdle, and nothing else happens, if only
// control frames came before the frames stopped.
func (c *Conn) readNext(ctx context.Context, idle bool) (MessageType, *bytes.Buffer, error) {
	if !c.accepted.Load() {
		return 0, nil, ErrNotAccepted
	}
	if p := c.readFailed.Load(); p != nil {
		return 0, nil, *p
	}
	rctx := ctx
	if c.ownDone(ctx) {
		rctx = context.Background()
	}
	c.reading.Add(1)
	defer c.reading.Add(-1)
	if idle {
		c.guard.setIdle(true)
	}
	typ, r, err := c.ws.Reader(rctx)
	if idle {
		c.guard.setIdle(false)
	}
	if err != nil {
		if idle && errors.Is(err, errIdle) {
			return 0, nil, errIdle
		}
		return 0, nil, c.readError(ctx, err)
	}
	buf := readBufs.Get().(*bytes.Buffer)
	if err := c.readMessage(buf, r); err != nil {
		putReadBuf(buf)
		return 0, nil, c.readError(ctx, err)
	}
	mt := MessageType(typ)
	if mt == MessageText && !utf8.Valid(buf.Bytes()) {
		putReadBuf(buf)
		err := fmt.Errorf("%w: connection closed with 1007", ErrInvalidUTF8)
		c.readFailed.Store(&err)
		c.fail(StatusInvalidFramePayloadData, "invalid UTF-8")
		return 0, nil, err
	}
	c.msgsIn.Add(1)
	c.bytesIn.Add(int64(buf.Len()))
	if hs := c.recvHooks.Load(); hs != nil {
		if err := c.runReceiveHooks(*hs, mt, buf.Len()); err != nil {
			putReadBuf(buf)
			return 0, nil, err
		}
	}
	return mt, buf, nil
}

// readMessage reads the message r reads into buf. A short message of
// one frame, in direct mode, is read to its length: coder/websocket then
// needs no further Read (and lock) only to say the message has ended,
// and its next Reader starts on the next frame (assumption 19). Only a
// short one (exactReadMax): the buffer is sized from the header before
// the payload comes, and a peer must not make the server allocate what
// it only declared (TestDeclaredLengthIsNotAllocatedAhead).
func (c *Conn) readMessage(buf *bytes.Buffer, r io.Reader) error {
	if n, ok := c.guard.messageLen(); ok && c.nc.direct && n <= min(exactReadMax, c.route.opts.ReadLimit) {
		buf.Grow(int(n))
		b := buf.AvailableBuffer()[:n]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		buf.Write(b)
		return nil
	}
	_, err := buf.ReadFrom(r)
	return err
}

// exactReadMax is the longest message readMessage reads to its length.
// The lock it saves matters for short messages; a longer one grows its
// buffer as its bytes come.
const exactReadMax = 4 << 10

// readError classifies a failed read. Every read failure ends the
// connection for reading; the classification decides what the peer is
// told and what the handler's error wraps.
func (c *Conn) readError(ctx context.Context, err error) error {
	var out error
	switch code := websocket.CloseStatus(err); {
	case code != -1:
		var ce websocket.CloseError
		errors.As(err, &ce)
		c.peerReason.Store(&ce.Reason)
		c.peerCode.Store(int32(code))
		e := newClosedError(err)
		e.peer, e.code = true, int(code)
		out = e
	case errors.Is(err, errCloseReasonNotUTF8):
		// guardedConn kept the peer's close frame from coder/websocket,
		// which would have echoed it: fail with 1007 instead (RFC 6455
		// §8.1), and close the socket at once, as for any bad input.
		out = fmt.Errorf("%w: the peer's close reason is not valid UTF-8; connection failed with 1007", ErrInvalidUTF8)
		c.readFailed.CompareAndSwap(nil, &out)
		c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in close reason")
		return out
	case ctx.Err() != nil && !c.ownDone(ctx):
		out = fmt.Errorf("%w: receive interrupted by its context: %w", ErrClosed, ctx.Err())
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket has sent 1009, often in the middle of a frame
		// whose end (and the peer's close frame behind it) may never
		// come: fail the connection now, as for 1002 and 1007.
		out = fmt.Errorf("%w: %w", ErrMessageTooBig, err)
		c.readFailed.CompareAndSwap(nil, &out)
		c.fail(StatusMessageTooBig, "message too big")
		return out
	case c.nc.closed.Load() || isDisconnect(err):
		// The peer is gone. coder/websocket leaves the socket open then:
		// close it, so that Done and OnClose fire now.
		c.nc.Close()
		out = newClosedError(err)
	default:
		out = fmt.Errorf("%w: %w", ErrProtocol, err)
		c.readFailed.CompareAndSwap(nil, &out)
		// coder/websocket has usually sent 1002 already; either way the
		// connection is failed now, not when the handler returns.
		c.fail(StatusProtocolError, "protocol error")
		return out
	}
	c.readFailed.CompareAndSwap(nil, &out)
	return out
}

// isDisconnect reports whether err means the transport is gone.
func isDisconnect(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}
