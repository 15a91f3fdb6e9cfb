package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// wsConn is a deliberately small RFC 6455 client used by every workload.
//
// Why not a library: the load generator shares two cores with the server, so
// it must cost as little CPU per message as possible and the same for every
// implementation under test; and the fanout check needs to see frames, not
// messages — a library would silently reassemble a message split into
// fragments, or hide two messages merged into one frame behind the same API.
// Here readFrame returns exactly one frame, and the caller checks FIN and the
// opcode.
type wsConn struct {
	nc net.Conn
	br *bufio.Reader

	wmu  sync.Mutex // guards wbuf and writes: pongs may come from a reader goroutine
	wbuf []byte

	rbuf []byte // payload buffer reused by readFrame; valid until the next call
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialWS opens a TCP connection to addr and performs the opening handshake
// for path. The whole handshake is bounded by timeout.
func dialWS(addr, path string, timeout time.Duration) (*wsConn, error) {
	return dialWSFrom("", addr, path, timeout, 4096)
}

// dialWSFrom is dialWS from the local address src ("" lets the kernel
// choose) with a read buffer of bufSize bytes. One loopback source address
// has about 28,000 ephemeral ports, so a process opening more connections
// than that, or many processes opening 100,000, each need their own.
func dialWSFrom(src, addr, path string, timeout time.Duration, bufSize int) (*wsConn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var keyb [16]byte
	_, _ = rand.Read(keyb[:])
	key := base64.StdEncoding.EncodeToString(keyb[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, bufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake %s: status %s", path, resp.Status)
	}
	h := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		nc.Close()
		return nil, fmt.Errorf("handshake %s: bad Sec-WebSocket-Accept", path)
	}
	_ = nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br}, nil
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// errClosed is returned by readFrame when the server sent a close frame.
type errClosed struct{ code int }

func (e errClosed) Error() string { return fmt.Sprintf("server closed the connection with %d", e.code) }

// readFrame reads one data frame. Pings are answered and pongs skipped here
// so callers see only data frames; a close frame ends with errClosed.
// The payload is only valid until the next call.
func (c *wsConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	for {
		var hdr [2]byte
		if _, err = io.ReadFull(c.br, hdr[:]); err != nil {
			return
		}
		fin = hdr[0]&0x80 != 0
		if hdr[0]&0x70 != 0 {
			return fin, 0, nil, errors.New("reserved bits set (compression was not negotiated)")
		}
		op = hdr[0] & 0x0F
		if hdr[1]&0x80 != 0 {
			return fin, op, nil, errors.New("server frame is masked")
		}
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err = io.ReadFull(c.br, ext[:]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err = io.ReadFull(c.br, ext[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if n > 1<<20 {
			return fin, op, nil, fmt.Errorf("frame of %d bytes is larger than any message this benchmark sends", n)
		}
		if uint64(cap(c.rbuf)) < n {
			c.rbuf = make([]byte, n)
		}
		payload = c.rbuf[:n]
		if _, err = io.ReadFull(c.br, payload); err != nil {
			return
		}
		switch op {
		case opPing:
			if err = c.writeFrame(opPong, payload); err != nil {
				return
			}
			continue
		case opPong:
			continue
		case opClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			return fin, op, nil, errClosed{code}
		}
		return fin, op, payload, nil
	}
}

// writeFrame writes one masked frame (RFC 6455 requires clients to mask).
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	// The mask only has to be unpredictable to intermediaries; there are
	// none on loopback, and crypto/rand per frame would cost the load
	// generator CPU that the server under test should get.
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], mrand.Uint32())
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= key[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

// closeNow drops the TCP connection without a close handshake: the
// workloads only need the server to notice, and it must not wait on us.
func (c *wsConn) closeNow() { _ = c.nc.Close() }
