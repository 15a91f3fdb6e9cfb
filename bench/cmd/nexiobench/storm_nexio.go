package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// nexio's side of the storm: a Hub with History, in memory or kept in
// Redis by redisbroker or in JetStream by natsbroker, a Stamp that puts each message's position in the
// frame (built once per message), and JoinFrom for the resume. After
// JoinFrom the handler sends one frame saying the member joined and
// whether it was recovered.
func init() {
	registerStorm("nexio", stormImpl{node: nexioStormNode, member: nexioProto{}})
}

func nexioStormNode(engine, redisAddr, prefix string, history int) (http.Handler, func(), error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := &hub.Options{
		Logger:  logger,
		History: hub.History{Size: history, TTL: 10 * time.Minute},
		Stamp: func(_ string, pos hub.Position, _ wsroute.MessageType, _ []byte) (wsroute.MessageType, []byte) {
			b := make([]byte, 0, 48)
			b = append(b, `{"e":"`...)
			b = append(b, pos.Epoch...)
			b = append(b, `","o":`...)
			b = strconv.AppendUint(b, pos.Offset, 10)
			return wsroute.MessageText, append(b, '}')
		},
	}
	var client *redis.Client
	var nc *nats.Conn
	switch engine {
	case "redis":
		client = redis.NewClient(&redis.Options{Addr: redisAddr})
		opts.Broker = redisbroker.New(client, &redisbroker.Options{Prefix: prefix})
	case "nats":
		var err error
		if nc, err = nats.Connect(redisAddr, nats.MaxReconnects(-1)); err != nil {
			return nil, nil, err
		}
		opts.Broker = natsbroker.New(nc, &natsbroker.Options{Prefix: strings.ReplaceAll(prefix, "-", "_")})
	}
	h := hub.New(opts)
	wopts := &wsroute.Options{Logger: logger}
	mux := http.NewServeMux()
	mux.Handle("/live", wopts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		var since hub.Position
		if s := c.Query("since"); s != "" {
			e, o, _ := strings.Cut(s, ":")
			off, err := strconv.ParseUint(o, 10, 64)
			if err != nil {
				return c.Reject(http.StatusBadRequest, "since=epoch:offset")
			}
			since = hub.Position{Epoch: e, Offset: off}
		}
		if err := c.Accept(ctx); err != nil {
			return err
		}
		rec, err := h.JoinFrom(c, "storm", since)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, `{"joined":true,"recovered":`+strconv.FormatBool(rec.Recovered)+`}`); err != nil {
			return err
		}
		c.CloseRead()
		<-c.Done()
		return nil
	}))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var last hub.Position
		for i := range n {
			pos, err := h.Publish(r.Context(), "storm", wsroute.MessageText, []byte(`{"n":`+strconv.Itoa(i)+`}`))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			last = pos
		}
		fmt.Fprintf(w, "%s %d\n", last.Epoch, last.Offset)
	})
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		if client != nil {
			client.Close()
		}
		if nc != nil {
			nc.Close()
		}
	}
	return mux, stop, nil
}

type nexioProto struct{}

type nexioConn struct {
	ws      *wsConn
	pending []uint64 // offsets that arrived before the joined frame
	rec     bool
	pos     stormPos
}

func (nexioProto) join(addr string, pos stormPos) (stormConn, error) {
	path := "/live"
	if pos.offset > 0 {
		path += "?since=" + url.QueryEscape(pos.epoch+":"+strconv.FormatUint(pos.offset, 10))
	}
	ws, err := dialWS(addr, path, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &nexioConn{ws: ws}
	for {
		_, _, p, err := ws.readFrame()
		if err != nil {
			ws.closeNow()
			return nil, err
		}
		if bytes.HasPrefix(p, []byte(`{"joined":`)) {
			c.rec = bytes.Contains(p, []byte(`"recovered":true`))
			return c, nil
		}
		v, _, ok := jsonUint(p, "o", 0)
		if !ok {
			ws.closeNow()
			return nil, fmt.Errorf("unexpected frame %q", p)
		}
		c.pending = append(c.pending, v)
		c.pos.epoch = jsonString(p, "e")
	}
}

func (c *nexioConn) next() (uint64, error) {
	if len(c.pending) > 0 {
		c.pos.offset = c.pending[0]
		c.pending = c.pending[1:]
		return c.pos.offset, nil
	}
	_, _, p, err := c.ws.readFrame()
	if err != nil {
		return 0, err
	}
	v, _, ok := jsonUint(p, "o", 0)
	if !ok {
		return 0, fmt.Errorf("unexpected frame %q", p)
	}
	c.pos = stormPos{epoch: jsonString(p, "e"), offset: v}
	return v, nil
}

func (c *nexioConn) position() stormPos { return c.pos }
func (c *nexioConn) recovered() bool    { return c.rec }
func (c *nexioConn) close()             { c.ws.closeNow() }
