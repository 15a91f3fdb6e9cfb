package wsroute

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sv.Close(); cl.Close() })
	return sv.(*net.TCPConn), cl.(*net.TCPConn)
}

// TestSockReaderReadsAndFailsAsTheSocket: what sockReader returns is
// what the socket's own Read would (assumption 15): the bytes in order
// through small and large reads, holding a pooled buffer only while some
// are pending, and errors that Conn.readError classifies the same way
// (the read deadline that Close sets to end coder/websocket's wait, a
// closed socket, the peer's FIN, the peer's RST).
func TestSockReaderReadsAndFailsAsTheSocket(t *testing.T) {
	if !rawReadable {
		t.Skip("sockReader reads through net.Conn on this system")
	}
	t.Run("bytes", func(t *testing.T) {
		sv, cl := tcpPair(t)
		var s sockReader
		s.setSocket(sv)
		if s.rc == nil {
			t.Fatal("a *net.TCPConn is not read through the descriptor")
		}
		data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 1000)
		go cl.Write(data)
		sv.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		for i := 0; len(got) < len(data); i++ {
			p := make([]byte, []int{16, 1, 5000, 3}[i%4])
			n, err := s.read(sv, p)
			if err != nil {
				t.Fatalf("after %d bytes: %v", len(got), err)
			}
			got = append(got, p[:n]...)
			if (s.buf != nil) != (s.r < s.w) {
				t.Fatalf("after %d bytes: buffer held %v with %d bytes pending", len(got), s.buf != nil, s.w-s.r)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatal("the bytes read differ from the bytes written")
		}
		if s.buf != nil {
			t.Fatal("a read buffer is held with nothing pending")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		sv, _ := tcpPair(t)
		var s sockReader
		s.setSocket(sv)
		sv.SetReadDeadline(time.Unix(1, 0))
		_, err := s.read(sv, make([]byte, 16))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("past the deadline: %v, want a timeout", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		sv, _ := tcpPair(t)
		var s sockReader
		s.setSocket(sv)
		sv.Close()
		if _, err := s.read(sv, make([]byte, 16)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("closed socket: %v, want net.ErrClosed", err)
		}
	})
	t.Run("EOF", func(t *testing.T) {
		sv, cl := tcpPair(t)
		var s sockReader
		s.setSocket(sv)
		cl.Write([]byte("ab"))
		cl.Close()
		sv.SetReadDeadline(time.Now().Add(10 * time.Second))
		p := make([]byte, 16)
		n, err := s.read(sv, p)
		if err != nil || string(p[:n]) != "ab" {
			t.Fatalf("read %q, %v", p[:n], err)
		}
		if _, err := s.read(sv, p); err != io.EOF {
			t.Fatalf("after the peer's FIN: %v, want io.EOF", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		sv, cl := tcpPair(t)
		var s sockReader
		s.setSocket(sv)
		cl.SetLinger(0)
		cl.Close()
		sv.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := s.read(sv, make([]byte, 16))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after the peer's RST: %v, want a read *net.OpError wrapping ECONNRESET", err)
		}
	})
}

// TestSockReaderNeedsTheSocketItself: a type that embeds a *net.TCPConn
// may change what Read returns, so it is read through its Read.
func TestSockReaderNeedsTheSocketItself(t *testing.T) {
	sv, _ := tcpPair(t)
	var s sockReader
	s.setSocket(struct{ *net.TCPConn }{sv})
	if s.rc != nil {
		t.Fatal("a wrapper around a *net.TCPConn is read through the descriptor")
	}
}
