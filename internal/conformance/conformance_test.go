package conformance

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/nexio-go/nexio/wsroute"
)

var caseFilter = flag.String("conformance.case", "",
	"run only the cases whose id matches this regular expression (e.g. '^5\\.' or '^7\\.9\\.')")

// readLimit is the echo endpoint's read limit: above the largest message
// of the 9.x cases below.
const readLimit = 2 << 20

// The routes: the echo endpoint with readLimit, and the same endpoint
// with the default read limit (64 KiB) for the cases that exceed it.
const (
	pathEcho    = "/echo"
	pathLimited = "/echo-64k"
)

// echo is the endpoint under test: every message comes back as it came,
// text as text and binary as binary.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		typ, data, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		if err := c.Send(ctx, typ, data); err != nil {
			return err
		}
	}
}

// echoDetached is echo on a detached connection (wsroute.Conn.Detach):
// the handler returns, and wsroute's own reader hands each message over.
func echoDetached(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		return c.Send(ctx, m.Type, m.Data)
	})
}

// variant is one configuration of the server and the client's offer.
type variant struct {
	name string
	opts wsroute.Options
	// detached: the endpoint is echoDetached instead of echo.
	detached bool
	offer    string // the client's Sec-WebSocket-Extensions
	// deflate: permessage-deflate is negotiated, so RSV1 on a data frame
	// is legal and the compressed cases (12.x, 13.x) run.
	deflate bool
	// framing: the uncompressed cases (1.x to 10.x) run.
	framing bool
}

// offerDefault is what Autobahn's 12.x cases offer.
const offerDefault = "permessage-deflate; client_max_window_bits"

var variants = []variant{
	{name: "plain", opts: wsroute.Options{}, framing: true},
	{
		// Context takeover, and every message compressed (threshold 1),
		// so that the server's deflate path carries every echo.
		name:    "deflate",
		opts:    wsroute.Options{Compression: wsroute.CompressionContextTakeover, CompressionThreshold: 1},
		offer:   offerDefault,
		deflate: true, framing: true,
	},
	{
		// No context takeover, the default threshold: small echoes go
		// out uncompressed on a connection that negotiated deflate.
		name:    "deflate-nct",
		opts:    wsroute.Options{Compression: wsroute.CompressionNoContextTakeover},
		offer:   offerDefault,
		deflate: true,
	},
	// The same protocol from a detached connection, whose frames are
	// read by wsroute's own reader between messages.
	{name: "plain-detached", opts: wsroute.Options{}, framing: true, detached: true},
	{
		name:     "deflate-detached",
		opts:     wsroute.Options{Compression: wsroute.CompressionContextTakeover, CompressionThreshold: 1},
		offer:    offerDefault,
		deflate:  true,
		framing:  true,
		detached: true,
	},
}

// tcase is one case of the table. id is Autobahn's case number where the
// case is Autobahn's (scaled down for 9.x, 12.x and 13.x, see
// docs/conformance.md); an "x" prefix marks a case Autobahn lacks.
type tcase struct {
	id   string
	desc string
	// offer, when set, replaces the variant's offer (13.x).
	offer string
	// path is the route: pathEcho (the default) or pathLimited.
	path string
	// plainOnly: the case relies on no extension being negotiated.
	plainOnly bool
	// deflateOnly: the case needs permessage-deflate negotiated.
	deflateOnly bool
	// skip, when set, names the open bug that keeps the case pending;
	// skipDeflate does so only where permessage-deflate is negotiated.
	skip, skipDeflate string
	script            func(s *session)
	want              expect
}

func serve(t *testing.T, v variant) string {
	opts := v.opts
	opts.ReadLimit = readLimit
	opts.Logger = slog.New(slog.DiscardHandler)
	limited := opts
	limited.ReadLimit = 0
	h := echo
	if v.detached {
		h = echoDetached
	}
	mux := http.NewServeMux()
	mux.Handle(pathEcho, opts.Handle(h))
	mux.Handle(pathLimited, limited.Handle(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestConformance runs every case against every variant it applies to.
func TestConformance(t *testing.T) {
	t.Parallel()
	var filter *regexp.Regexp
	if *caseFilter != "" {
		filter = regexp.MustCompile(*caseFilter)
	}
	cases := allCases()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			addr := serve(t, v)
			var mu sync.Mutex
			tally := map[string]int{}
			t.Cleanup(func() {
				var parts []string
				for k, n := range tally {
					parts = append(parts, fmt.Sprintf("%s %d", k, n))
				}
				sort.Strings(parts)
				t.Logf("%s: %s", v.name, strings.Join(parts, ", "))
			})
			for _, tc := range cases {
				if !applies(v, tc) || filter != nil && !filter.MatchString(tc.id) {
					continue
				}
				t.Run(tc.id, func(t *testing.T) {
					t.Parallel()
					if skip := tc.skipIn(v); skip != "" {
						mu.Lock()
						tally["PENDING"]++
						mu.Unlock()
						t.Skipf("pending: %s", skip)
					}
					r := runCase(t, addr, v, tc)
					verdict := r.behavior
					if !r.passed() {
						verdict = vFailed
					}
					mu.Lock()
					tally[verdict]++
					mu.Unlock()
					switch {
					case !r.passed():
						t.Errorf("case %s (%s) against %s: %s", tc.id, tc.desc, v.name, r)
					case testing.Verbose():
						t.Logf("%s", r)
					}
				})
			}
		})
	}
}

func (tc tcase) skipIn(v variant) string {
	if tc.skip == "" && v.deflate {
		return tc.skipDeflate
	}
	return tc.skip
}

func applies(v variant, tc tcase) bool {
	if tc.deflateOnly {
		return v.deflate
	}
	if tc.plainOnly && v.deflate {
		return false
	}
	return v.framing
}

func runCase(t *testing.T, addr string, v variant, tc tcase) result {
	t.Helper()
	offer := v.offer
	if tc.offer != "" {
		offer = tc.offer
	}
	path := pathEcho
	if tc.path != "" {
		path = tc.path
	}
	c, err := dial(addr, path, offer, caseTimeout)
	if err != nil {
		return result{behavior: vFailed, behaviorClose: vFailed, detail: []string{"opening handshake: " + err.Error()}}
	}
	if v.deflate && tc.offer == "" && !c.deflate {
		c.nc.Close()
		return result{behavior: vFailed, behaviorClose: vFailed, detail: []string{"the server declined permessage-deflate"}}
	}
	if tc.offer != "" && !c.deflate {
		t.Logf("the server declined the offer %q: messages go uncompressed", tc.offer)
	}
	s := newSession(c)
	tc.script(s)
	return s.finish(tc.want)
}
