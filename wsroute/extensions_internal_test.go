package wsroute

import (
	"net/http"
	"strings"
	"testing"
)

func TestBadDeflateOffer(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		ext string
		bad bool
	}{
		{"permessage-deflate", false},
		{" permessage-deflate ; client_no_context_takeover ; server_no_context_takeover", false},
		{"permessage-deflate; client_max_window_bits; server_max_window_bits=8", false},
		{`permessage-deflate; client_max_window_bits="12"`, false},
		{"x-webkit-deflate-frame; anything=goes; anything=goes", false},
		{"permessage-deflate; server_max_window_bits", true},
		{"permessage-deflate; server_max_window_bits=16", true},
		{"permessage-deflate; client_max_window_bits=0", true},
		{"permessage-deflate; client_max_window_bits=015", true},
		{"permessage-deflate; client_max_window_bits; client_max_window_bits", true},
		{"permessage-deflate; server_no_context_takeover=true", true},
		{"permessage-deflate; unknown", true},
		{"permessage-deflate;", true},
	}
	for _, tc := range testCases {
		if got := badDeflateOffer(tc.ext); got != tc.bad {
			t.Errorf("badDeflateOffer(%q) = %v, want %v", tc.ext, got, tc.bad)
		}
	}
}

// TestDeclineBadDeflateOffersKeepsRequest checks that the request the
// handler sees is never changed, and that nothing is copied for a request
// with only valid offers (the handshake path stays allocation-free).
func TestDeclineBadDeflateOffersKeepsRequest(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
	if got := declineBadDeflateOffers(r, CompressionContextTakeover); got != r {
		t.Fatal("a request with valid offers was copied")
	}
	if n := testing.AllocsPerRun(100, func() { declineBadDeflateOffers(r, CompressionContextTakeover) }); n != 0 {
		t.Errorf("%v allocations for a valid offer, want 0", n)
	}
	bad := "permessage-deflate; client_max_window_bits=99, permessage-deflate"
	r.Header.Set("Sec-WebSocket-Extensions", bad)
	got := declineBadDeflateOffers(r, CompressionContextTakeover)
	if v := got.Header.Get("Sec-WebSocket-Extensions"); v != "permessage-deflate" {
		t.Errorf("filtered header %q, want %q", v, "permessage-deflate")
	}
	if v := r.Header.Get("Sec-WebSocket-Extensions"); v != bad {
		t.Errorf("the original request's header changed to %q", v)
	}
	if declineBadDeflateOffers(r, CompressionDisabled) != r {
		t.Error("a request was copied with compression disabled")
	}
}

// FuzzDeclineBadDeflateOffers checks the filter on any client header: it
// never panics, keeps only offers that are not bad, and is idempotent.
func FuzzDeclineBadDeflateOffers(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits")
	f.Add("permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate")
	f.Add(`permessage-deflate; client_max_window_bits="9"`)
	f.Add(",,;=;permessage-deflate;=")
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header["Sec-Websocket-Extensions"] = []string{header}
		out := declineBadDeflateOffers(r, CompressionNoContextTakeover)
		filtered := strings.Join(out.Header["Sec-Websocket-Extensions"], ",")
		for ext := range strings.SplitSeq(filtered, ",") {
			if badDeflateOffer(ext) {
				t.Fatalf("filtered header %q keeps bad offer %q", filtered, ext)
			}
		}
		if again := declineBadDeflateOffers(out, CompressionNoContextTakeover); again != out {
			t.Fatalf("filtering %q twice changed it again", header)
		}
	})
}
