package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Clients dial from their own loopback addresses: on Linux all of
// 127.0.0.0/8 is loopback, so each client group, and each client of a
// storm from many addresses, has the IP the rate limiter and MaxConns
// count it under, with no header to trust. The server listens on
// 127.0.0.1; clients use 127.<group>.x.y.
const (
	groupMembers   = 1 // well-behaved members and publishers
	groupChaos     = 2 // the fault injectors, spread over many addresses
	groupStormOne  = 3 // a storm from one address
	groupStormMany = 4 // a storm from many addresses
	groupSlow      = 5 // slowloris and half-open handshakes
	groupStalled   = 6 // members that stop reading
	groupLoad      = 7 // TestLoad's clients
	groupProbe     = 8 // the echo prober and single test clients
)

// srcIP returns the i-th address of a group.
func srcIP(group, i int) string {
	i %= 250 * 250
	return fmt.Sprintf("127.%d.%d.%d", group, i/250, i%250+1)
}

// dialer dials from src. rcvBuf, when positive, sets SO_RCVBUF before
// connecting, so that a client that stops reading fills its window
// quickly (the kernel would otherwise grow it to megabytes).
func dialer(src string, rcvBuf int) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

// dialWS opens a WebSocket with coder/websocket from src. The transport
// keeps no connection: a refused handshake leaves nothing behind.
func dialWS(ctx context.Context, addr, src, path string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	var o websocket.DialOptions
	if opts != nil {
		o = *opts
	}
	tr := &http.Transport{DialContext: dialer(src, 0).DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	o.HTTPClient = &http.Client{Transport: tr}
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+path, &o)
	if resp != nil && resp.Body != nil && err != nil {
		resp.Body.Close()
	}
	if c != nil {
		c.SetReadLimit(-1)
	}
	return c, resp, err
}

// closeStatus returns the close code and reason in a coder/websocket
// error, -1 if there is none.
func closeStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// rawConn is a client below what a WebSocket library allows: it writes
// any bytes and reads the server's frames itself.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *rawConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// reset drops the connection with a TCP reset: no close frame, no FIN.
func (c *rawConn) reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Conn.Close()
}

// handshake is a client handshake request; fields left empty take valid
// values, "-" leaves the header out.
type handshake struct {
	method  string
	path    string
	host    string
	key     string
	version string
	origin  string
	upgrade string
	extra   []string // more "Name: value" lines
}

func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func (h handshake) bytes(addr string) []byte {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", or(h.method, "GET"), or(h.path, "/ws/echo"), or(h.host, addr))
	hdr := func(name, v, def string) {
		if v = or(v, def); v != "-" {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	hdr("Upgrade", h.upgrade, "websocket")
	hdr("Connection", "", "Upgrade")
	hdr("Sec-WebSocket-Version", h.version, "13")
	hdr("Sec-WebSocket-Key", h.key, newKey())
	hdr("Origin", h.origin, "-")
	for _, l := range h.extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// rawDial connects from src without sending anything.
func rawDial(ctx context.Context, addr, src string, rcvBuf int) (*rawConn, error) {
	nc, err := dialer(src, rcvBuf).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}, nil
}

// rawHandshake connects from src, sends h and reads the response. The
// connection is returned open whatever the status; the caller closes it.
func rawHandshake(ctx context.Context, addr, src string, h handshake, rcvBuf int) (*rawConn, *http.Response, error) {
	c, err := rawDial(ctx, addr, src, rcvBuf)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Write(h.bytes(addr)); err != nil {
		c.Close()
		return nil, nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Keep the body for the caller to inspect, bounded.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	return c, resp, nil
}

// Opcodes.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// frame builds one client frame, masked unless unmasked is set.
func frame(fin bool, rsv, opcode byte, payload []byte, unmasked bool) []byte {
	return frameHeader(fin, rsv, opcode, uint64(len(payload)), unmasked, payload)
}

// frameHeader builds a frame that claims length n and carries payload
// (which may be shorter than n: a frame cut short).
func frameHeader(fin bool, rsv, opcode byte, n uint64, unmasked bool, payload []byte) []byte {
	b0 := opcode | rsv<<4
	if fin {
		b0 |= 0x80
	}
	out := make([]byte, 0, 14+len(payload))
	out = append(out, b0)
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	switch {
	case n < 126:
		out = append(out, mask|byte(n))
	case n < 1<<16:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	if unmasked {
		return append(out, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// closeFrame builds a client close frame.
func closeFrame(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return frame(true, 0, opClose, append(p, reason...), false)
}

// readFrame reads one server frame (servers never mask). It refuses
// payloads over max, so a hostile or buggy peer cannot make it allocate.
func readFrame(br *bufio.Reader, max int) (fin bool, opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return false, 0, nil, err
	}
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(br, l[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(br, l[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > uint64(max) {
		return fin, opcode, nil, fmt.Errorf("server frame of %d bytes, over %d", n, max)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return fin, opcode, payload, err
}

// readClose reads frames until the server's close frame or the end of
// the connection, and returns the close code (-1 without a close frame)
// and reason.
func (c *rawConn) readClose(d time.Duration) (code int, reason string, err error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	for {
		_, op, p, err := readFrame(c.br, 1<<20)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				return -1, "", nil
			}
			return -1, "", err
		}
		if op == opClose {
			if len(p) < 2 {
				return -1, "", nil
			}
			return int(binary.BigEndian.Uint16(p)), string(p[2:]), nil
		}
	}
}
