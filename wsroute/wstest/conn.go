package wstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// DefaultTimeout is Conn.Timeout's default.
const DefaultTimeout = 5 * time.Second

// queueSize bounds the messages read ahead of the test; the reader waits
// when it is full, which is backpressure on the server as with any slow
// client.
const queueSize = 256

// Conn is the client side of a WebSocket connection opened by
// Server.Dial. Send methods may be called from many goroutines; Receive
// and Expect methods take the next message and belong to one goroutine
// at a time.
type Conn struct {
	// Timeout bounds each Receive, Expect and ReadClose call.
	// Defaults to DefaultTimeout.
	Timeout time.Duration

	ws   *websocket.Conn
	resp *http.Response
	srv  *Server

	// The reader goroutine (read) owns ws's read side. It puts each
	// message in msgs, and on its way out stores the error that ended
	// the connection in readErr and closes readDone. It ends when the
	// connection ends, at the latest when Close or CloseNow drops it.
	msgs     chan wsroute.Message
	readDone chan struct{}
	readErr  error
	stop     chan struct{} // closed by CloseNow: the reader stops waiting on msgs
	stopOnce sync.Once
}

func newConn(ws *websocket.Conn, resp *http.Response, srv *Server) *Conn {
	c := &Conn{
		ws:       ws,
		resp:     resp,
		srv:      srv,
		msgs:     make(chan wsroute.Message, queueSize),
		readDone: make(chan struct{}),
		stop:     make(chan struct{}),
	}
	go c.read()
	return c
}

func (c *Conn) read() {
	defer close(c.readDone)
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.readErr = err
			return
		}
		select {
		case c.msgs <- wsroute.Message{Type: wsroute.MessageType(typ), Data: data}:
		case <-c.stop:
			c.readErr = errDropped
			return
		}
	}
}

// errDropped is the reader's error when CloseNow stopped it.
var errDropped = errors.New("connection dropped by the client (CloseNow)")

// WS returns the underlying github.com/coder/websocket connection, for
// what this package does not wrap (pings, raw writers). Do not read from
// it: the Conn reads it.
func (c *Conn) WS() *websocket.Conn { return c.ws }

// Response returns the server's handshake response (101 Switching
// Protocols), with its headers.
func (c *Conn) Response() *http.Response { return c.resp }

// Subprotocol returns the subprotocol the server chose, "" if none.
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

func (c *Conn) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// SendText sends a text message.
func (c *Conn) SendText(text string) error {
	return c.send(websocket.MessageText, []byte(text))
}

// SendBytes sends a binary message.
func (c *Conn) SendBytes(data []byte) error {
	return c.send(websocket.MessageBinary, data)
}

// SendJSON sends v encoded as JSON in a text message.
func (c *Conn) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wstest: SendJSON: %w", err)
	}
	return c.send(websocket.MessageText, b)
}

func (c *Conn) send(typ websocket.MessageType, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout())
	defer cancel()
	if err := c.ws.Write(ctx, typ, data); err != nil {
		return fmt.Errorf("%w: send: %w", ErrClosed, err)
	}
	return nil
}

// Receive waits up to Timeout for the next message. Messages that arrived
// before the server closed are returned first; after them, the error
// wraps ErrClosed and the close (wsroute.CloseStatus reads its code).
func (c *Conn) Receive() (wsroute.Message, error) {
	// Queued messages come first, even once the reader is done.
	select {
	case m := <-c.msgs:
		return m, nil
	default:
	}
	t := time.NewTimer(c.timeout())
	defer t.Stop()
	select {
	case m := <-c.msgs:
		return m, nil
	case <-c.readDone:
		select {
		case m := <-c.msgs:
			return m, nil
		default:
		}
		return wsroute.Message{}, fmt.Errorf("%w: %w", ErrClosed, c.readErr)
	case <-t.C:
		return wsroute.Message{}, fmt.Errorf("%w (%v)", ErrTimeout, c.timeout())
	}
}

// ReceiveText is Receive for a text message: a binary one is an error
// wrapping ErrUnexpected.
func (c *Conn) ReceiveText() (string, error) {
	m, err := c.Receive()
	if err != nil {
		return "", err
	}
	if m.Type != wsroute.MessageText {
		return "", fmt.Errorf("%w: got a binary message (%d bytes), want text", ErrUnexpected, len(m.Data))
	}
	return m.Text(), nil
}

// ReceiveJSON is Receive for a text message holding JSON, decoded into v.
func (c *Conn) ReceiveJSON(v any) error {
	text, err := c.ReceiveText()
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return fmt.Errorf("%w: message %q does not decode: %w", ErrUnexpected, clip(text), err)
	}
	return nil
}

// ExpectText receives the next message and checks that it is the text
// message want.
func (c *Conn) ExpectText(want string) error {
	m, err := c.Receive()
	if err != nil {
		return fmt.Errorf("wstest: want text %q: %w", clip(want), err)
	}
	if m.Type != wsroute.MessageText || m.Text() != want {
		return fmt.Errorf("%w: got %s %q, want text %q", ErrUnexpected, m.Type, clip(m.Text()), clip(want))
	}
	return nil
}

// ExpectBytes receives the next message and checks that it is the binary
// message want.
func (c *Conn) ExpectBytes(want []byte) error {
	m, err := c.Receive()
	if err != nil {
		return fmt.Errorf("wstest: want %d binary bytes: %w", len(want), err)
	}
	if m.Type != wsroute.MessageBinary || !bytes.Equal(m.Data, want) {
		return fmt.Errorf("%w: got %s %q, want binary %q", ErrUnexpected, m.Type, clip(m.Text()), clip(string(want)))
	}
	return nil
}

// ExpectNoMessage checks that no message arrives for d (and that the
// connection does not end meanwhile). The connection stays open.
func (c *Conn) ExpectNoMessage(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-c.msgs:
		return fmt.Errorf("%w: got %s %q, want no message for %v", ErrUnexpected, m.Type, clip(m.Text()), d)
	case <-c.readDone:
		select {
		case m := <-c.msgs:
			return fmt.Errorf("%w: got %s %q, want no message for %v", ErrUnexpected, m.Type, clip(m.Text()), d)
		default:
		}
		return fmt.Errorf("%w: %w", ErrClosed, c.readErr)
	case <-t.C:
		return nil
	}
}

// ReadClose waits up to Timeout for the server to end the connection and
// returns the close code and reason it sent. A connection that ended
// without a close frame reports 1006 (StatusAbnormalClosure), as browsers
// do. A data message arriving first is an error wrapping ErrUnexpected:
// receive the messages you expect before asserting the close.
func (c *Conn) ReadClose() (wsroute.StatusCode, string, error) {
	m, err := c.Receive()
	if err == nil {
		return 0, "", fmt.Errorf("%w: got %s %q, want the connection to close", ErrUnexpected, m.Type, clip(m.Text()))
	}
	if !errors.Is(err, ErrClosed) {
		return 0, "", err
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return wsroute.StatusCode(ce.Code), ce.Reason, nil
	}
	return wsroute.StatusAbnormalClosure, "", nil
}

// ExpectClose is ReadClose that checks the code. Its error names the
// code and reason that came instead.
func (c *Conn) ExpectClose(code wsroute.StatusCode) error {
	got, reason, err := c.ReadClose()
	if err != nil {
		return fmt.Errorf("wstest: want close %d: %w", int(code), err)
	}
	if got != code {
		return fmt.Errorf("%w: closed with %d %q, want %d", ErrUnexpected, int(got), reason, int(code))
	}
	return nil
}

// Close closes the connection from the client's side with code and
// reason, waits (boundedly) for the server's answer, and stops the
// reader. Messages not yet received are discarded. Close and CloseNow
// may be called more than once.
func (c *Conn) Close(code wsroute.StatusCode, reason string) error {
	if !code.Sendable() {
		return fmt.Errorf("wstest: close: %w: got %d", wsroute.ErrInvalidCloseCode, int(code))
	}
	err := c.ws.Close(websocket.StatusCode(code), reason)
	c.CloseNow() // the reader is done after this: readErr may be read
	if err == nil || errors.Is(err, net.ErrClosed) || websocket.CloseStatus(c.readErr) != -1 {
		// Closed now or before, by us or by the server: it is over.
		return nil
	}
	return fmt.Errorf("wstest: close: %w", err)
}

// CloseNow drops the connection without a close handshake (the server
// sees the client vanish) and waits for the reader to stop.
func (c *Conn) CloseNow() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.ws.CloseNow()
	<-c.readDone
	if c.srv != nil {
		c.srv.forget(c)
	}
}

// clip shortens long messages in error texts.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
