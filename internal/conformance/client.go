package conformance

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// client is a raw RFC 6455 client: it builds every frame by hand, so it
// can send what a library never would (reserved bits and opcodes,
// fragmented control frames, bad close codes, invalid UTF-8), and it
// checks every frame the server sends against the RFC.
//
// One goroutine writes (the case's script) while one reads (readEvent);
// writeMu keeps the reader's automatic answers (a pong, the close echo)
// from splitting the script's frames.
type client struct {
	nc net.Conn
	br *bufio.Reader

	deflate  bool // permessage-deflate was negotiated
	params   deflateParams
	deflater deflater
	inflater inflater

	writeMu sync.Mutex

	// maxFrame and maxMessage bound what the server may send
	// (maxServerFrame and maxServerMessage; smaller when fuzzing).
	maxFrame, maxMessage int

	// Reader state: the message being assembled.
	msgOpcode     byte
	msgCompressed bool
	msgBuf        []byte
}

// maxServerMessage bounds a message the server sends, once inflated.
const maxServerMessage = 64 << 20

// dial opens a TCP connection to addr and performs the opening handshake
// for path, offering the extensions in offer (empty: none).
func dial(addr, path, offer string, timeout time.Duration) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c, err := handshake(nc, addr, path, offer, timeout)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func handshake(nc net.Conn, host, path, offer string, timeout time.Duration) (*client, error) {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, host)
	fmt.Fprintf(&req, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	if offer != "" {
		fmt.Fprintf(&req, "Sec-WebSocket-Extensions: %s\r\n", offer)
	}
	req.WriteString("\r\n")
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write([]byte(req.String())); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the handshake response: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake answered %s, want 101", resp.Status)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade") {
		return nil, fmt.Errorf("101 without Upgrade: websocket and Connection: Upgrade: %v", resp.Header)
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	c := &client{nc: nc, br: br, maxFrame: maxServerFrame, maxMessage: maxServerMessage}
	p, ok, err := parseDeflateResponse(strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", "), offer)
	if err != nil {
		return nil, err
	}
	if ok {
		c.deflate, c.params = true, p
		c.deflater.takeover = !p.clientNoContextTakeover
		c.inflater.takeover = !p.serverNoContextTakeover
	}
	return c, nil
}

// maskedFrame returns a client frame with a fresh masking key.
func maskedFrame(fin bool, rsv, opcode byte, payload []byte) frame {
	f := frame{fin: fin, rsv: rsv, opcode: opcode, masked: true, payload: payload}
	rand.Read(f.key[:])
	return f
}

// write sends the frames' bytes in writes of at most chop bytes (0: all
// in one write), as Autobahn's "chops" split what it sends, so that the
// server meets frames cut at every point.
func (c *client) write(chop int, fs ...frame) error {
	var b []byte
	for _, f := range fs {
		b = appendFrame(b, f)
	}
	return c.writeRaw(chop, b)
}

func (c *client) writeRaw(chop int, b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if chop <= 0 {
		chop = len(b)
	}
	for len(b) > 0 {
		n := min(chop, len(b))
		if _, err := c.nc.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// messageFrames returns a data message as frames of at most frag bytes
// of payload each (0: one frame), compressed first when compress is set
// (RSV1 on the first frame only, RFC 7692 section 6.1).
func (c *client) messageFrames(opcode byte, data []byte, frag int, compress bool) []frame {
	var rsv byte
	if compress {
		data = c.deflater.compress(data)
		rsv = rsv1
	}
	if frag <= 0 || frag >= len(data) {
		return []frame{maskedFrame(true, rsv, opcode, data)}
	}
	var fs []frame
	for i := 0; i < len(data); i += frag {
		end := min(i+frag, len(data))
		op := byte(opContinuation)
		var r byte
		if i == 0 {
			op, r = opcode, rsv
		}
		fs = append(fs, maskedFrame(end == len(data), r, op, data[i:end]))
	}
	return fs
}

// closePayload encodes a close frame's payload; code < 0 means none.
func closePayload(code int, reason string) []byte {
	if code < 0 {
		return nil
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// event is what the server sent, as the judge sees it.
type event struct {
	kind   string // "message", "ping", "pong", "close", or a case's own marker
	opcode byte   // message: opText or opBinary
	data   []byte
	code   int // close: -1 when the frame had no code
	reason string
}

func (e event) String() string {
	switch e.kind {
	case "message":
		kind := "text"
		if e.opcode == opBinary {
			kind = "binary"
		}
		return fmt.Sprintf("%s(%s)", kind, short(e.data))
	case "ping", "pong":
		return fmt.Sprintf("%s(%s)", e.kind, short(e.data))
	case "close":
		return fmt.Sprintf("close(%d %q)", e.code, e.reason)
	}
	return e.kind
}

func short(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q… %d bytes", b[:32], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// violation is a frame or message the server may not send.
type violation struct{ msg string }

func (v *violation) Error() string { return "server broke RFC 6455: " + v.msg }

func violated(format string, args ...any) error {
	return &violation{fmt.Sprintf(format, args...)}
}

// readEvent reads frames until it has a whole message or a control frame,
// and checks them as a client must (RFC 6455 sections 5 and 7, RFC 7692):
// frames from the server are unmasked, RSV bits are set only as
// negotiated, opcodes are known, fragments follow each other, control
// frames are short and whole, text is UTF-8, a close payload is a valid
// code and a UTF-8 reason.
func (c *client) readEvent() (event, error) {
	for {
		f, err := readFrame(c.br, uint64(c.maxFrame))
		if errors.Is(err, errFrame) {
			return event{}, violated("%v", err)
		}
		if err != nil {
			return event{}, err
		}
		if f.masked {
			return event{}, violated("masked frame (opcode %d)", f.opcode)
		}
		if f.isControl() {
			return c.controlEvent(f)
		}
		switch {
		case f.opcode != opContinuation && f.opcode != opText && f.opcode != opBinary:
			return event{}, violated("reserved opcode %d", f.opcode)
		case f.rsv&^rsv1 != 0:
			return event{}, violated("RSV bits %03b on a data frame", f.rsv)
		case f.rsv&rsv1 != 0 && !c.deflate:
			return event{}, violated("RSV1 set without permessage-deflate")
		case f.rsv&rsv1 != 0 && f.opcode == opContinuation:
			return event{}, violated("RSV1 set on a continuation frame")
		case f.opcode == opContinuation && c.msgOpcode == 0:
			return event{}, violated("continuation frame with no message to continue")
		case f.opcode != opContinuation && c.msgOpcode != 0:
			return event{}, violated("new message (opcode %d) before the previous one ended", f.opcode)
		}
		if f.opcode != opContinuation {
			c.msgOpcode, c.msgCompressed = f.opcode, f.rsv&rsv1 != 0
			c.msgBuf = c.msgBuf[:0]
		}
		if len(c.msgBuf)+len(f.payload) > c.maxMessage {
			return event{}, violated("message over %d bytes", c.maxMessage)
		}
		c.msgBuf = append(c.msgBuf, f.payload...)
		if !f.fin {
			continue
		}
		e := event{kind: "message", opcode: c.msgOpcode, data: append([]byte(nil), c.msgBuf...)}
		compressed := c.msgCompressed
		c.msgOpcode, c.msgCompressed = 0, false
		if compressed {
			if e.data, err = c.inflater.inflate(e.data, c.maxMessage); err != nil {
				return event{}, violated("%v", err)
			}
		}
		if e.opcode == opText && !utf8.Valid(e.data) {
			return event{}, violated("text message that is not UTF-8: %s", short(e.data))
		}
		return e, nil
	}
}

func (c *client) controlEvent(f frame) (event, error) {
	switch {
	case f.rsv != 0:
		return event{}, violated("RSV bits %03b on a control frame", f.rsv)
	case !f.fin:
		return event{}, violated("fragmented control frame")
	case len(f.payload) > 125:
		return event{}, violated("control frame with %d bytes of payload", len(f.payload))
	}
	switch f.opcode {
	case opPing:
		return event{kind: "ping", data: f.payload}, nil
	case opPong:
		return event{kind: "pong", data: f.payload}, nil
	case opClose:
		e := event{kind: "close", code: -1}
		switch p := f.payload; {
		case len(p) == 1:
			return event{}, violated("close frame with a 1-byte payload")
		case len(p) >= 2:
			e.code, e.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			if !sendableCode(e.code) {
				return event{}, violated("close code %d may not be sent", e.code)
			}
			if !utf8.ValidString(e.reason) {
				return event{}, violated("close reason that is not UTF-8: %q", e.reason)
			}
		}
		return e, nil
	}
	return event{}, violated("reserved control opcode %d", f.opcode)
}

// sendableCode reports whether an endpoint may put code in a close frame
// (RFC 6455 section 7.4, and the IANA registry: 1012-1014 are assigned).
func sendableCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
