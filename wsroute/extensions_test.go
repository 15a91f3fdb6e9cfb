package wsroute_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// TestDeflateOffersRFC7692 offers permessage-deflate in forms RFC 7692
// section 7 says a server MUST decline (a parameter given twice, a value
// where none is allowed, a window size outside 8-15) and checks that the
// handshake answers without the extension, or with the client's next,
// valid offer; valid offers are still accepted, and the handler sees the
// header the client sent.
func TestDeflateOffersRFC7692(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	srv := serve(t, &wsroute.Options{Compression: wsroute.CompressionContextTakeover}, "/ws",
		func(ctx context.Context, c *wsroute.Conn) error {
			seen <- c.Header().Get("Sec-WebSocket-Extensions")
			if err := c.Accept(ctx); err != nil {
				return err
			}
			return c.Close(wsroute.StatusNormalClosure, "")
		})
	testCases := []struct {
		name, offer, want string
	}{
		{"plain offer", "permessage-deflate", "permessage-deflate"},
		{"window bits in range", "permessage-deflate; client_max_window_bits=10", "permessage-deflate"},
		{"client window bits without value", "permessage-deflate; client_max_window_bits", "permessage-deflate"},
		{"server window bits 15", "permessage-deflate; server_max_window_bits=15", "permessage-deflate"},
		{"parameter given twice", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
		{"client window bits 16", "permessage-deflate; client_max_window_bits=16", ""},
		{"client window bits 7", "permessage-deflate; client_max_window_bits=7", ""},
		{"leading zero", "permessage-deflate; client_max_window_bits=09", ""},
		{"value on a flag", "permessage-deflate; client_no_context_takeover=1", ""},
		{"bad offer, then a valid one",
			"permessage-deflate; client_max_window_bits=16, permessage-deflate; client_no_context_takeover",
			"permessage-deflate; client_no_context_takeover"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := handshakeExtensions(t, srv.Listener.Addr().String(), tc.offer)
			testutil.Equal(t, <-seen, tc.offer)
			if tc.want == "" {
				testutil.Check(t, got == "", "offer %q: server accepted %q, want it declined", tc.offer, got)
				return
			}
			testutil.Check(t, strings.HasPrefix(got, tc.want), "offer %q: server answered %q, want %q", tc.offer, got, tc.want)
		})
	}
}

// handshakeExtensions performs a handshake offering offer and returns the
// Sec-WebSocket-Extensions of the 101 response.
func handshakeExtensions(t *testing.T, addr, offer string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	testutil.NoErr(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: " + offer + "\r\n\r\n"))
	testutil.NoErr(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	testutil.NoErr(t, err)
	testutil.Equal(t, resp.StatusCode, http.StatusSwitchingProtocols)
	return resp.Header.Get("Sec-WebSocket-Extensions")
}
