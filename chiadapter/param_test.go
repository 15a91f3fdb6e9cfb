package chiadapter_test

import (
	"context"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/go-chi/chi/v5"

	"github.com/nexio-go/nexio/chiadapter"
	"github.com/nexio-go/nexio/wsroute"
)

func TestParamIsDecoded(t *testing.T) {
	t.Parallel()
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	report := func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, chiadapter.Param(c, "id")+"|"+c.Param("id")+"|"+chiadapter.Param(c, "room"))
	}
	ws.Handle("/ws/user/{id}", report)
	ws.Route("/rooms/{room}", func(s *chiadapter.Router) {
		s.Handle("/ws/{id}", report)
	})
	srv := start(t, r)
	testCases := []struct {
		path, want string
	}{
		{"/ws/user/42", "42|42|"},
		{"/ws/user/al%20ice", "al ice|al ice|"},
		{"/ws/user/a%2Fb", "a/b|a/b|"},
		{"/ws/user/100%25", "100%|100%|"},
		{"/ws/user/%E2%9C%93", "✓|✓|"},
		{"/ws/user/caf%C3%A9%2F1", "café/1|café/1|"},
		{"/rooms/the%20lobby/ws/al%20ice", "al ice|al ice|the lobby"},
		{"/rooms/a%2Fb/ws/c%2Fd", "c/d|c/d|a/b"},
	}
	for _, tc := range testCases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			testutil.Equal(t, firstMessage(t, srv, tc.path, nil), tc.want)
		})
	}
}
