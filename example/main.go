// Command example is nexio's demo server: every example of Python
// Nexio's WebSocket module (docs/guide.md) on one http.ServeMux, rooms
// that span instances through Redis, and a browser chat page.
//
//	go run ./example                        # http://127.0.0.1:8080
//	go run ./example -addr :9000 -rate 0    # another port, no rate limit
//	go run ./example -redis redis://127.0.0.1:6379/0
//	go run ./example -nats nats://127.0.0.1:4222  # NATS with JetStream
//	go run ./example -history 0             # /ws/live without history
//
// Run two instances with the same -redis (or -nats) and different -addr: a chat page
// on each, in the same room, see each other's messages and presence.
// SIGINT or SIGTERM closes every WebSocket with 1001 and exits 0 within
// five seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownBudget bounds the graceful stop: clients get their 1001, and
// the process exits well within the five seconds the design promises.
const shutdownBudget = 4 * time.Second

func main() {
	os.Exit(mainWith(os.Args[1:]))
}

// mainWith runs the server until SIGINT or SIGTERM.
func mainWith(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stderr)
}

// run parses the flags, serves until ctx ends, then stops gracefully. It
// returns the process exit code: 0 after a graceful stop, 1 if the server
// could not start, 2 for bad flags.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./example [flags]\n\nnexio's demo server: every example of docs/guide.md, and a chat page at /.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address`")
	redisURL := fs.String("redis", "", "Redis `URL` (redis://host:6379/0): /ws/rooms/{room} and /ws/live/{room} span every instance on it; empty: in memory")
	natsURL := fs.String("nats", "", "NATS `URL` (nats://host:4222, JetStream enabled): as -redis, on NATS; excludes -redis")
	history := fs.Int("history", 1000, "messages kept per room of /ws/live/{room} (10 minutes after the last one), in memory or in -redis; 0: live only")
	rate := fs.Int("rate", 20, "WebSocket handshakes per second per client IP on /ws/ routes, bursts of 2N; 0 turns the limit off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "example: unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return 2
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	a, err := newApp(config{Rate: *rate, RedisURL: *redisURL, NATSURL: *natsURL, History: *history, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "example: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("cannot listen", "addr", *addr, "error", err)
		a.Shutdown(context.Background())
		return 1
	}
	srv := &http.Server{
		Handler: a.Handler(),
		// Clients that send half a request (slowloris) are dropped
		// rather than piling up: the handshake is read by net/http.
		ReadHeaderTimeout: 10 * time.Second,
		// A WebSocket handshake needs a few hundred bytes of headers;
		// the default 1 MiB lets each slow client hold far more.
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("nexio demo listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/",
		"redis", *redisURL != "", "nats", *natsURL != "", "rate", *rate, "history", *history)

	select {
	case err := <-serveErr:
		log.Error("server failed", "error", err)
		a.Shutdown(context.Background())
		return 1
	case <-ctx.Done():
	}

	log.Info("shutting down: closing every WebSocket with 1001")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	// http.Server.Shutdown closes the listener and waits for plain HTTP
	// requests, but neither closes nor waits for WebSocket connections,
	// which it no longer owns: app.Shutdown does that, meanwhile.
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(sctx) }()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP requests still running at the deadline were dropped", "error", err)
		srv.Close()
	}
	if err := <-done; err != nil {
		log.Warn("connections still open at the deadline were dropped", "error", err)
	}
	<-serveErr // http.ErrServerClosed
	log.Info("stopped")
	return 0
}
