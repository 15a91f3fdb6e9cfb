package wsroute_test

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// rawDial opens a TCP connection and completes a WebSocket handshake by
// hand, for tests that must misbehave below what a client library allows.
func rawDial(t testing.TB, srv *httptest.Server, path string, extra http.Header) net.Conn {
	t.Helper()
	nc, _ := rawDialResponse(t, srv, path, extra)
	return nc
}

// rawDialResponse is rawDial that also returns the 101 response.
func rawDialResponse(t testing.TB, srv *httptest.Server, path string, extra http.Header) (net.Conn, *http.Response) {
	t.Helper()
	return rawDialSending(t, srv, path, extra, nil)
}

// rawDialSending is rawDialResponse that sends after right behind the
// handshake request, in the same write: frames the server reads with the
// request.
func rawDialSending(t testing.TB, srv *httptest.Server, path string, extra http.Header, after []byte) (net.Conn, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	testutil.NoErr(t, err)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(srv.URL, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for k, vs := range extra {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	_, err = nc.Write(append([]byte(req+"\r\n"), after...))
	testutil.NoErr(t, err)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	testutil.NoErr(t, err)
	testutil.Equal(t, resp.StatusCode, http.StatusSwitchingProtocols)
	nc.SetReadDeadline(time.Time{})
	return &bufConn{Conn: nc, br: br}, resp
}

// bufConn keeps the bytes read past the handshake response.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// frame builds one client frame: masked unless unmasked is set.
func frame(fin bool, rsv byte, opcode byte, payload []byte, unmasked bool) []byte {
	b0 := opcode | rsv<<4
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mask|byte(n))
	case n < 1<<16:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if unmasked {
		return append(out, payload...)
	}
	key := [4]byte{1, 2, 3, 4}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// readFrame reads one server frame (servers never mask).
func readFrame(br *bufio.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err = ioReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	opcode = h[0] & 0x0f
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err = ioReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = ioReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	payload = make([]byte, n)
	_, err = ioReadFull(br, payload)
	return opcode, payload, err
}

func ioReadFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
