package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// member is one connection joined to the room, as the fanout and idle
// workloads see it: each implementation's clients join its own way.
type member interface {
	// recv returns the payload of the next broadcast, valid until the
	// next call; control frames and protocol pings are handled inside.
	recv() ([]byte, error)
	closeNow()
}

// roomProtocols maps an implementation to how its clients join the room
// at /room; the others take plain WebSocket frames, one per broadcast.
var roomProtocols = map[string]func(*wsConn) (member, error){
	"centrifuge": joinCentrifuge,
}

// joinRoom dials /room from src ("" for any) and joins it as impl's
// clients do.
func joinRoom(impl, src, addr string, bufSize int) (member, error) {
	ws, err := dialWSFrom(src, addr, "/room", 15*time.Second, bufSize)
	if err != nil {
		return nil, err
	}
	if join := roomProtocols[impl]; join != nil {
		return join(ws)
	}
	return rawMember{ws}, nil
}

// rawMember gets each broadcast as its own text frame: nexio's contract,
// and the way the other peers' examples send.
type rawMember struct{ *wsConn }

func (m rawMember) recv() ([]byte, error) {
	fin, op, p, err := m.readFrame()
	if err != nil {
		return nil, err
	}
	if !fin || op != opText {
		return nil, fmt.Errorf("frame is fin=%v op=%d, want a broadcast alone in one text frame", fin, op)
	}
	return p, nil
}

// joinCentrifuge connects and subscribes to the room's channel with
// centrifuge's JSON protocol; its publications then arrive as push
// lines, several to a frame when they queue up (its writer batches up to
// 16 per frame), each carrying the published JSON string as data.
func joinCentrifuge(ws *wsConn) (member, error) {
	c, _, err := centrifugeSubscribe(ws, `"channel":"`+roomName+`"`)
	if err != nil {
		return nil, err
	}
	return centrifugeMember{c}, nil
}

type centrifugeMember struct{ *centrifugeConn }

func (m centrifugeMember) recv() ([]byte, error) {
	for {
		l, err := m.line()
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(l, []byte(`"pub":`)) {
			continue
		}
		// The data is a JSON string the benchmark published: letters,
		// digits and spaces, so the bytes between the quotes are it.
		_, rest, ok := bytes.Cut(l, []byte(`"data":"`))
		if !ok {
			return nil, fmt.Errorf("a publication without string data: %s", l)
		}
		data, _, ok := bytes.Cut(rest, []byte(`"`))
		if !ok {
			return nil, errors.New("a publication's data string does not end")
		}
		return data, nil
	}
}

func (m centrifugeMember) closeNow() { m.ws.closeNow() }
