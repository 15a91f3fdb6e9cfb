package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/centrifugal/centrifuge"
)

// centrifuge's side of the storm: a Node with history and recovery on for
// the room (SubscribeOptions.EnableRecovery), UseSingleFlight as its docs
// advise for mass reconnects, the same 10 s write timeout as nexio's, the memory broker or the Redis broker
// (history in a Redis stream per channel). Its clients speak its JSON
// protocol: connect, then subscribe with recover:true, epoch and offset;
// the subscribe reply carries the missed publications.
func init() {
	registerStorm("centrifuge", stormImpl{node: centrifugeStormNode, member: centrifugeProto{}})
}

func centrifugeStormNode(engine, redisAddr, prefix string, history int) (http.Handler, func(), error) {
	// UseSingleFlight, as centrifuge's docs advise for mass reconnects.
	node, err := newCentrifugeNode(true, centrifuge.SubscribeOptions{EnableRecovery: true})
	if err != nil {
		return nil, nil, err
	}
	if engine == "redis" {
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: redisAddr})
		if err != nil {
			return nil, nil, err
		}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Prefix: prefix, Shards: []*centrifuge.RedisShard{shard}})
		if err != nil {
			return nil, nil, err
		}
		node.SetBroker(broker)
	}
	if err := node.Run(); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifugeWebsocket(node))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var last centrifuge.StreamPosition
		for i := range n {
			res, err := node.Publish("storm", []byte(`{"n":`+strconv.Itoa(i)+`}`), centrifuge.WithHistory(history, 10*time.Minute))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			last = res.StreamPosition
		}
		fmt.Fprintf(w, "%s %d\n", last.Epoch, last.Offset)
	})
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	}
	return mux, stop, nil
}

// newCentrifugeNode returns a Node (not yet running) that lets every
// client connect anonymously and subscribe to any channel with sub.
func newCentrifugeNode(singleFlight bool, sub centrifuge.SubscribeOptions) (*centrifuge.Node, error) {
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel:        centrifuge.LogLevelError,
		LogHandler:      func(e centrifuge.LogEntry) { fmt.Println("centrifuge:", e.Message, e.Fields) },
		UseSingleFlight: singleFlight,
	})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{Options: sub}, nil)
		})
	})
	return node, nil
}

// centrifugeWebsocket is centrifuge's WebSocket handler with the same 10 s
// write timeout as nexio's: its default (1 s per write) drops members
// whose client falls behind for a second, which the load generator
// sharing two cores with the server sometimes does.
func centrifugeWebsocket(node *centrifuge.Node) http.Handler {
	return centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin:  func(*http.Request) bool { return true },
		WriteTimeout: 10 * time.Second,
	})
}

type centrifugeProto struct{}

type centrifugeConn struct {
	ws      *wsConn
	pending []uint64 // offsets of the publications of the subscribe reply
	lines   [][]byte // lines of the current frame not handled yet
	rec     bool
	epoch   string
	last    uint64
}

func (centrifugeProto) join(addr string, pos stormPos) (stormConn, error) {
	ws, err := dialWS(addr, "/connection/websocket", 30*time.Second)
	if err != nil {
		return nil, err
	}
	sub := `"channel":"storm"`
	if pos.offset > 0 {
		sub += `,"recover":true,"epoch":"` + pos.epoch + `","offset":` + strconv.FormatUint(pos.offset, 10)
	}
	c, r, err := centrifugeSubscribe(ws, sub)
	if err != nil {
		return nil, err
	}
	c.epoch = jsonString(r, "epoch")
	c.rec = pos.offset == 0 || bytes.Contains(r, []byte(`"recovered":true`))
	if i := bytes.Index(r, []byte(`"publications":[`)); i >= 0 {
		end := i + bytes.IndexByte(r[i:], ']')
		for p := i; ; {
			v, next, ok := jsonUint(r[:end], "offset", p)
			if !ok {
				break
			}
			c.pending = append(c.pending, v)
			p = next
		}
	}
	return c, nil
}

// centrifugeSubscribe speaks centrifuge's JSON protocol on ws: connect,
// then subscribe with the given fields of the subscribe command. It
// returns the subscribe reply; on error ws is closed.
func centrifugeSubscribe(ws *wsConn, subscribe string) (*centrifugeConn, []byte, error) {
	c := &centrifugeConn{ws: ws}
	if err := ws.writeFrame(opText, []byte(`{"id":1,"connect":{}}`)); err != nil {
		ws.closeNow()
		return nil, nil, err
	}
	if _, err := c.reply(1); err != nil {
		ws.closeNow()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	if err := ws.writeFrame(opText, []byte(`{"id":2,"subscribe":{`+subscribe+`}}`)); err != nil {
		ws.closeNow()
		return nil, nil, err
	}
	r, err := c.reply(2)
	if err != nil {
		ws.closeNow()
		return nil, nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, r, nil
}

// line returns the next JSON line from the server, answering pings.
func (c *centrifugeConn) line() ([]byte, error) {
	for {
		for len(c.lines) > 0 {
			l := c.lines[0]
			c.lines = c.lines[1:]
			if len(l) == 0 {
				continue
			}
			if string(l) == "{}" { // a ping: answer it
				if err := c.ws.writeFrame(opText, []byte("{}")); err != nil {
					return nil, err
				}
				continue
			}
			return l, nil
		}
		_, _, p, err := c.ws.readFrame()
		if err != nil {
			return nil, err
		}
		// The frame buffer is reused by the next read: copy.
		c.lines = bytes.Split(bytes.Clone(p), []byte("\n"))
	}
}

// reply reads lines until the reply to command id.
func (c *centrifugeConn) reply(id int) ([]byte, error) {
	prefix := []byte(`{"id":` + strconv.Itoa(id) + `,`)
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(l, prefix) {
			if bytes.Contains(l, []byte(`"error":`)) {
				return nil, errors.New(string(l))
			}
			return l, nil
		}
	}
}

func (c *centrifugeConn) next() (uint64, error) {
	if len(c.pending) > 0 {
		c.last = c.pending[0]
		c.pending = c.pending[1:]
		return c.last, nil
	}
	for {
		l, err := c.line()
		if err != nil {
			return 0, err
		}
		if !bytes.Contains(l, []byte(`"pub":`)) {
			continue
		}
		v, _, ok := jsonUint(l, "offset", 0)
		if !ok {
			return 0, fmt.Errorf("a publication without an offset: %s", l)
		}
		c.last = v
		return v, nil
	}
}

func (c *centrifugeConn) position() stormPos { return stormPos{c.epoch, c.last} }
func (c *centrifugeConn) recovered() bool    { return c.rec }
func (c *centrifugeConn) close()             { c.ws.closeNow() }
