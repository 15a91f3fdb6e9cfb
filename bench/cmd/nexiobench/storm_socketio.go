package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Socket.IO's side of the storm: Socket.IO 4.8's connection state
// recovery, on its in-memory adapter or on @socket.io/redis-streams-adapter
// (the adapter its docs name for recovery across nodes). The node is a
// Node.js program, bench/socketio/server.js (npm install there first;
// bench/storm.sh does). The client speaks Engine.IO 4 over WebSocket: it
// resumes with the session id (pid) and the offset of the last event it
// received, as socket.io-client does.
func init() {
	registerStorm("socketio", stormImpl{command: socketioCommand, member: socketioProto{}})
}

func socketioCommand(engine, redisAddr, prefix string, history int) *exec.Cmd {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "socketio", "server.js")
	return exec.Command("node", script, "--engine", engine, "--redis", redisAddr,
		"--prefix", prefix, "--history", strconv.Itoa(history))
}

type socketioProto struct{}

type socketioConn struct {
	ws      *wsConn
	pending []uint64
	rec     bool
	pid     string
	offset  string // the recovery offset of the last event next returned
	pendOff []string
	last    uint64
}

func (socketioProto) join(addr string, pos stormPos) (stormConn, error) {
	ws, err := dialWS(addr, "/socket.io/?EIO=4&transport=websocket", 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &socketioConn{ws: ws}
	fail := func(err error) (stormConn, error) { ws.closeNow(); return nil, err }
	p, err := c.packet()
	if err != nil || len(p) == 0 || p[0] != '0' {
		return fail(fmt.Errorf("engine.io open: %q %v", p, err))
	}
	connect := []byte("40")
	if pos.offset > 0 {
		pid, off, _ := strings.Cut(pos.epoch, " ")
		connect = fmt.Appendf(nil, `40{"pid":%q,"offset":%q}`, pid, off)
		c.pid, c.offset, c.last = pid, off, pos.offset
	}
	if err := ws.writeFrame(opText, connect); err != nil {
		return fail(err)
	}
	for {
		p, err := c.packet()
		if err != nil {
			return fail(err)
		}
		switch {
		case bytes.HasPrefix(p, []byte("40")):
			if pid := jsonString(p, "pid"); pid != "" {
				c.pid = pid
			}
		case bytes.HasPrefix(p, []byte(`42["joined",`)):
			c.rec = pos.offset == 0 || bytes.HasPrefix(p, []byte(`42["joined",true`))
			return c, nil
		case bytes.HasPrefix(p, []byte(`42["m",`)):
			seq, off, err := parseSioEvent(p)
			if err != nil {
				return fail(err)
			}
			c.pending = append(c.pending, seq)
			c.pendOff = append(c.pendOff, off)
		case bytes.HasPrefix(p, []byte("44")):
			return fail(fmt.Errorf("connect refused: %s", p))
		}
	}
}

// packet returns the next Engine.IO packet that is not a ping (pings
// are answered).
func (c *socketioConn) packet() ([]byte, error) {
	for {
		_, _, p, err := c.ws.readFrame()
		if err != nil {
			return nil, err
		}
		if len(p) == 1 && p[0] == '2' {
			if err := c.ws.writeFrame(opText, []byte("3")); err != nil {
				return nil, err
			}
			continue
		}
		return p, nil
	}
}

// parseSioEvent reads 42["m",<seq>,"<offset>"].
func parseSioEvent(p []byte) (uint64, string, error) {
	rest := p[len(`42["m",`):]
	var seq uint64
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		seq = seq*10 + uint64(rest[i]-'0')
		i++
	}
	if i == 0 || i+2 >= len(rest) || rest[i] != ',' || rest[i+1] != '"' {
		return 0, "", fmt.Errorf("an event without a recovery offset: %q", p)
	}
	off := rest[i+2:]
	e := bytes.IndexByte(off, '"')
	if e < 0 {
		return 0, "", fmt.Errorf("bad event %q", p)
	}
	return seq, string(off[:e]), nil
}

func (c *socketioConn) next() (uint64, error) {
	if len(c.pending) > 0 {
		c.last, c.offset = c.pending[0], c.pendOff[0]
		c.pending, c.pendOff = c.pending[1:], c.pendOff[1:]
		return c.last, nil
	}
	for {
		p, err := c.packet()
		if err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(p, []byte(`42["m",`)) {
			continue
		}
		seq, off, err := parseSioEvent(p)
		if err != nil {
			return 0, err
		}
		c.last, c.offset = seq, off
		return seq, nil
	}
}

func (c *socketioConn) position() stormPos {
	return stormPos{epoch: c.pid + " " + c.offset, offset: c.last}
}
func (c *socketioConn) recovered() bool { return c.rec }
func (c *socketioConn) close()          { c.ws.closeNow() }
