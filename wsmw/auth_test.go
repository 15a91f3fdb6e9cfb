package wsmw_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

var (
	accepted     = outcome{status: 101, code: 1000}
	unauthorized = outcome{status: 101, code: 4001, reason: "Unauthorized"}
)

// whoAmI accepts and reports what Auth left in the context, then closes
// with 1000.
func whoAmI(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	id, _ := wsmw.Identity[string](ctx)
	msg := "anonymous"
	if wsmw.Authenticated(ctx) {
		msg = "authenticated " + id
	}
	return c.SendText(ctx, msg+" subprotocol="+c.Subprotocol())
}

func TestAuthTokenSources(t *testing.T) {
	t.Parallel()
	static := wsmw.AuthOptions{Token: "valid_token"}
	testCases := []struct {
		name      string
		opts      wsmw.AuthOptions
		routeOpts wsroute.Options
		path      string
		header    http.Header
		protos    []string
		want      outcome
		wantProto string // the subprotocol the client sees negotiated
	}{
		{name: "no token", opts: static, want: unauthorized},
		{name: "bare header", opts: static, header: http.Header{"Authorization": {"valid_token"}}, want: accepted},
		{name: "Bearer header", opts: static, header: http.Header{"Authorization": {"Bearer valid_token"}}, want: accepted},
		{name: "bearer header, odd spacing", opts: static, header: http.Header{"Authorization": {"  bearer   valid_token "}}, want: accepted},
		{name: "wrong header", opts: static, header: http.Header{"Authorization": {"Bearer nope"}}, want: unauthorized},
		{name: "empty Bearer header", opts: static, header: http.Header{"Authorization": {"Bearer "}}, want: unauthorized},
		{name: "prefix of the token", opts: static, header: http.Header{"Authorization": {"valid_tok"}}, want: unauthorized},
		{name: "query", opts: static, path: "?token=valid_token", want: accepted},
		{name: "wrong query", opts: static, path: "?token=nope", want: unauthorized},
		{name: "cookie", opts: static, header: http.Header{"Cookie": {"token=valid_token"}}, want: accepted},
		{name: "wrong cookie", opts: static, header: http.Header{"Cookie": {"token=nope"}}, want: unauthorized},
		{
			name: "subprotocol", opts: static, protos: []string{"bearer", "valid_token"},
			want: accepted, wantProto: "bearer",
		},
		{
			name: "wrong subprotocol token: refused, marker still echoed", opts: static,
			protos: []string{"bearer", "nope"}, want: unauthorized, wantProto: "bearer",
		},
		{
			name: "marker without a token", opts: static, protos: []string{"bearer"},
			want: unauthorized, wantProto: "bearer",
		},
		{
			name: "route subprotocol wins over the marker", opts: static,
			routeOpts: wsroute.Options{Subprotocols: []string{"chat"}},
			protos:    []string{"chat", "bearer", "valid_token"}, want: accepted, wantProto: "chat",
		},
		{
			name: "marker echoed when the token came from elsewhere", opts: static,
			path: "?token=valid_token", protos: []string{"bearer", "ignored"}, want: accepted, wantProto: "bearer",
		},
		{
			name: "first source found decides: wrong header, right cookie", opts: static,
			header: http.Header{"Authorization": {"nope"}, "Cookie": {"token=valid_token"}}, want: unauthorized,
		},
		{
			name: "renamed sources", opts: wsmw.AuthOptions{Token: "valid_token", Header: "X-Api-Token", Query: "jwt", Cookie: "session", Subprotocol: "access_token"},
			path: "?jwt=valid_token", want: accepted,
		},
		{
			name: "renamed header", opts: wsmw.AuthOptions{Token: "valid_token", Header: "X-Api-Token"},
			header: http.Header{"X-Api-Token": {"valid_token"}}, want: accepted,
		},
		{
			name: "renamed subprotocol", opts: wsmw.AuthOptions{Token: "valid_token", Subprotocol: "access_token"},
			protos: []string{"access_token", "valid_token"}, want: accepted, wantProto: "access_token",
		},
		{
			name: "query turned off", opts: wsmw.AuthOptions{Token: "valid_token", Query: "-"},
			path: "?token=valid_token", want: unauthorized,
		},
		{
			name: "header turned off", opts: wsmw.AuthOptions{Token: "valid_token", Header: "-"},
			header: http.Header{"Authorization": {"valid_token"}}, want: unauthorized,
		},
		{
			name: "cookie turned off", opts: wsmw.AuthOptions{Token: "valid_token", Cookie: "-"},
			header: http.Header{"Cookie": {"token=valid_token"}}, want: unauthorized,
		},
		{
			name: "subprotocol turned off", opts: wsmw.AuthOptions{Token: "valid_token", Subprotocol: "-"},
			protos: []string{"bearer", "valid_token"}, want: unauthorized, wantProto: "bearer",
		},
		{
			name: "RejectHTTP", opts: wsmw.AuthOptions{Token: "valid_token", RejectHTTP: true},
			want: outcome{status: http.StatusUnauthorized},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ran atomic.Bool
			srv := serve(t, &tc.routeOpts, func(ctx context.Context, c *wsroute.Conn) error {
				ran.Store(true)
				return whoAmI(ctx, c)
			}, wsmw.Auth(tc.opts))
			ctx := testutil.Ctx(t)
			c, resp, err := websocket.Dial(ctx, wsURL(srv, "/ws"+tc.path),
				&websocket.DialOptions{HTTPHeader: tc.header, Subprotocols: tc.protos})
			if tc.want.status != 101 {
				testutil.Check(t, err != nil, "dial succeeded, want HTTP %d", tc.want.status)
				testutil.Equal(t, resp.StatusCode, tc.want.status)
				testutil.Equal(t, resp.Header.Get("WWW-Authenticate"), `Bearer realm="websocket"`)
				testutil.Check(t, !ran.Load(), "the handler ran after a refusal")
				return
			}
			testutil.NoErr(t, err)
			defer c.CloseNow()
			testutil.Equal(t, c.Subprotocol(), tc.wantProto)
			if tc.want == accepted {
				_, msg, err := c.Read(ctx)
				testutil.NoErr(t, err)
				testutil.Equal(t, string(msg), "authenticated  subprotocol="+tc.wantProto)
			}
			code, reason := readClose(t, c)
			testutil.Equal(t, outcome{status: 101, code: code, reason: reason}, tc.want)
			testutil.Equal(t, ran.Load(), tc.want == accepted)
		})
	}
}

// TestAuthBrowserRefusedBeforeAuth: a browser offering ["bearer", token]
// must see the close code of a middleware that refuses before Auth runs
// (here RateLimit), which needs the handshake to echo a subprotocol.
func TestAuthBrowserRefusedBeforeAuth(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, whoAmI,
		wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 1e-9, Burst: 1}),
		wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}))
	opts := &websocket.DialOptions{Subprotocols: []string{"bearer", "valid_token"}}
	got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), opts)
	testutil.NoErr(t, err)
	testutil.Equal(t, got, accepted)
	c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), opts)
	testutil.NoErr(t, err)
	testutil.Equal(t, resp.Header.Get("Sec-WebSocket-Protocol"), "bearer")
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4003)
	testutil.Equal(t, reason, "Rate limit exceeded")
}

type user struct{ name string }

func TestAuthValidate(t *testing.T) {
	t.Parallel()
	errExpired := errors.New("token expired")
	validate := func(ctx context.Context, token string) (any, error) {
		switch token {
		case "alice-token":
			return &user{name: "alice"}, nil
		case "expired":
			return nil, errExpired
		case "banned":
			return nil, &wsroute.CloseError{Code: 4003, Reason: "Forbidden"}
		}
		return nil, errors.New("unknown token")
	}
	testCases := []struct {
		name    string
		token   string
		want    outcome
		wantErr error
	}{
		{"identity reaches the handler", "alice-token", outcome{status: 101, code: 1000, reason: "alice"}, nil},
		{"validation error", "expired", unauthorized, errExpired},
		{"CloseError picks the code", "banned", outcome{status: 101, code: 4003, reason: "Forbidden"}, wsmw.ErrUnauthorized},
		{"no token", "", unauthorized, wsmw.ErrUnauthorized},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chainErr := make(chan error, 1)
			capture := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				err := next(ctx, c)
				chainErr <- err
				return err
			})
			srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
				u, ok := wsmw.Identity[*user](ctx)
				testutil.Check(t, ok && wsmw.Authenticated(ctx), "no identity in the handler's context")
				_, wrongType := wsmw.Identity[string](ctx)
				testutil.Check(t, !wrongType, "Identity[string] reported an identity of another type")
				return c.Close(1000, u.name)
			}, capture, wsmw.Auth(wsmw.AuthOptions{Validate: validate}))
			got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws?token="+tc.token), nil)
			testutil.NoErr(t, err)
			testutil.Equal(t, got, tc.want)
			err = <-chainErr
			if tc.wantErr == nil {
				testutil.Check(t, err == nil, "chain returned %v", err)
				return
			}
			testutil.Check(t, errors.Is(err, wsmw.ErrUnauthorized), "chain error %v does not wrap ErrUnauthorized", err)
			testutil.Check(t, errors.Is(err, tc.wantErr), "chain error %v does not wrap %v", err, tc.wantErr)
		})
	}
}

func TestAuthInvalidOptionsPanic(t *testing.T) {
	t.Parallel()
	validate := func(context.Context, string) (any, error) { return nil, nil }
	testCases := []struct {
		name string
		opts wsmw.AuthOptions
	}{
		{"neither", wsmw.AuthOptions{}},
		{"both", wsmw.AuthOptions{Token: "x", Validate: validate}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mustPanic(t, "wsmw: AuthOptions: set exactly one of Token and Validate", func() { wsmw.Auth(tc.opts) })
		})
	}
}

func TestAuthIdentityOutsideAuth(t *testing.T) {
	t.Parallel()
	_, ok := wsmw.Identity[any](context.Background())
	testutil.Check(t, !ok, "identity without Auth")
	testutil.Check(t, !wsmw.Authenticated(context.Background()), "authenticated without Auth")
}
