// Command example is nexio's demo server: every example of the Nexio
// WebSocket docs, mounted on one http.ServeMux.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	tracker := wsroute.NewTracker()
	opts := &wsroute.Options{Tracker: tracker}
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if err := c.SendText(ctx, "Echo: "+msg); err != nil {
				return err
			}
		}
	}))

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		tracker.Shutdown(sctx)
	}()
	slog.Info("nexio demo listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "error", err)
		os.Exit(1)
	}
	<-ctx.Done()
}
