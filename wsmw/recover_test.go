package wsmw_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

func TestRecover(t *testing.T) {
	t.Parallel()
	errPlain := errors.New("plain")
	testCases := []struct {
		name      string
		handler   wsroute.HandlerFunc
		want      outcome
		wantPanic any // nil: no panic expected
		wantErr   error
	}{
		{
			name: "panic after accept",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				panic("handler bug")
			},
			want:      outcome{status: 101, code: 1011, reason: "internal error"},
			wantPanic: "handler bug",
		},
		{
			name:      "panic before accept",
			handler:   func(ctx context.Context, c *wsroute.Conn) error { panic("middleware bug") },
			want:      outcome{status: http.StatusInternalServerError},
			wantPanic: "middleware bug",
		},
		{
			name: "panic with an error that would mean a normal close",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				panic(&wsroute.CloseError{Code: 1000, Reason: "fine"})
			},
			want:      outcome{status: 101, code: 1011, reason: "internal error"},
			wantPanic: &wsroute.CloseError{Code: 1000, Reason: "fine"},
		},
		{
			name: "no panic: the error passes through",
			handler: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return errPlain
			},
			want:    outcome{status: 101, code: 1011, reason: "internal error"},
			wantErr: errPlain,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan error, 1)
			outer := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				err := next(ctx, c)
				seen <- err
				return err
			})
			l, logs := testLogger()
			srv := serve(t, &wsroute.Options{Logger: l}, tc.handler, outer, wsmw.Recover)
			got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			testutil.NoErr(t, err)
			testutil.Equal(t, got, tc.want)
			err = <-seen
			if tc.wantPanic == nil {
				testutil.Check(t, errors.Is(err, tc.wantErr), "got %v, want %v", err, tc.wantErr)
				return
			}
			var pe *wsmw.PanicError
			testutil.Check(t, errors.As(err, &pe), "outer middleware saw %v, want a *PanicError", err)
			testutil.Equal(t, pe.Error() != "", true)
			testutil.Check(t, strings.Contains(string(pe.Stack), "recover_test.go"), "stack does not show where it panicked:\n%s", pe.Stack)
			testutil.Check(t, strings.HasPrefix(pe.Error(), "wsmw: recovered panic: "), "error text %q", pe.Error())
			var ce *wsroute.CloseError
			testutil.Check(t, !errors.As(err, &ce), "a PanicError unwrapped to its value")
			// wsroute logs it with the stack.
			testutil.Eventually(t, func() bool { return strings.Contains(logs.String(), "recover_test.go") },
				"the panic's stack was not logged:\n%s", logs)
		})
	}
}
