package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Well-behaved members read every message of their room and check each
// publisher's sequence numbers: "m|<publisher>|<seq>|<padding>". A gap
// is recorded as missing messages, to be explained at the end; a
// duplicate or a message out of order is never acceptable.

// member is a well-behaved client of /ws/rooms/{room}; a publisher is a
// member that also sends.
type member struct {
	id   string
	room string
	node int
	ws   *websocket.Conn
	done chan struct{} // closed when the read loop has ended

	mu       sync.Mutex
	last     map[string]int    // publisher → highest seq received
	missing  map[string][]span // publisher → gaps
	disorder []string          // duplicates or reordering: first few
	repeats  []pubSeq          // messages received again (seq <= last): all
	received int
	ended    bool // the read loop saw the end of the connection
	leaving  bool // the test closed it
	endCode  websocket.StatusCode
	endWhy   string
	endErr   error
}

// pubSeq names one message.
type pubSeq struct {
	pub string
	seq int
}

// span is a run of missing sequence numbers, from and to inclusive.
type span struct{ from, to int }

// newMember connects member id to room on the node at addr, from the
// idx-th address of the members' group.
func newMember(ctx context.Context, addr, id, room string, node, idx int) (*member, error) {
	path := "/ws/rooms/" + room + "?probe=" + id
	ws, _, err := dialWS(ctx, addr, srcIP(groupMembers, idx), path, nil)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", id, err)
	}
	m := &member{id: id, room: room, node: node, ws: ws, done: make(chan struct{}),
		last: make(map[string]int), missing: make(map[string][]span)}
	// The read loop is owned by the member; it ends with the connection.
	go m.read()
	return m, nil
}

func (m *member) read() {
	defer close(m.done)
	for {
		_, b, err := m.ws.Read(context.Background())
		if err != nil {
			code, why := closeStatus(err)
			m.mu.Lock()
			m.ended, m.endCode, m.endWhy, m.endErr = true, code, why, err
			m.mu.Unlock()
			return
		}
		pub, seq, ok := parseSeq(string(b))
		m.mu.Lock()
		m.received++
		if !ok {
			m.addDisorder(fmt.Sprintf("unparsable message %q", clip(string(b), 40)))
		} else {
			last := m.last[pub]
			switch {
			case seq == last+1:
			case seq > last+1:
				m.missing[pub] = append(m.missing[pub], span{last + 1, seq - 1})
			default:
				m.repeats = append(m.repeats, pubSeq{pub, seq})
				m.addDisorder(fmt.Sprintf("from %s: seq %d after %d", pub, seq, last))
			}
			m.last[pub] = max(last, seq)
		}
		m.mu.Unlock()
	}
}

func (m *member) addDisorder(s string) {
	if len(m.disorder) < 5 {
		m.disorder = append(m.disorder, s)
	} else {
		m.disorder[4] = fmt.Sprintf("… and more (%s)", s)
	}
}

// seqMessage formats a publisher's message.
func seqMessage(pub string, seq int, pad string) string {
	return "m|" + pub + "|" + strconv.Itoa(seq) + "|" + pad
}

func parseSeq(s string) (pub string, seq int, ok bool) {
	rest, ok := strings.CutPrefix(s, "m|")
	if !ok {
		return "", 0, false
	}
	pub, rest, ok = strings.Cut(rest, "|")
	if !ok {
		return "", 0, false
	}
	n, _, _ := strings.Cut(rest, "|")
	seq, err := strconv.Atoi(n)
	return pub, seq, err == nil && seq > 0
}

// caughtUp reports whether the member has every message up to final
// from each publisher of its room (or its connection ended).
func (m *member) caughtUp(finals map[string]int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return true
	}
	for pub, n := range finals {
		if pub != m.id && m.last[pub] < n {
			return false
		}
	}
	return true
}

// leave closes the member normally and waits for its read loop.
func (m *member) leave() {
	m.mu.Lock()
	m.leaving = true
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		<-ctx.Done()
		m.ws.CloseNow()
	}()
	m.ws.Close(websocket.StatusNormalClosure, "bye")
	<-m.done
}

// publish sends seq-numbered messages every interval until stop closes;
// it returns how many it sent.
func (m *member) publish(stop <-chan struct{}, interval time.Duration, pad string) (sent int, err error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return sent, nil
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := m.ws.Write(ctx, websocket.MessageText, []byte(seqMessage(m.id, seq, pad)))
		cancel()
		if err != nil {
			return sent, err
		}
		sent++
	}
}

// pubLog records, for every publisher, each broadcast the server made
// of its messages: when the hub returned, and whether publishing to
// other nodes failed. Index seq-1.
type pubLog struct {
	mu   sync.Mutex
	recs map[string][]pubRecord
	node map[string]int // the node each publisher is connected to
	odd  []string       // records out of sequence: first few
}

type pubRecord struct {
	start  time.Time // Broadcast called
	at     time.Time // Broadcast returned
	failed bool      // hub.ErrPublish: local members served, other nodes not
}

func newPubLog() *pubLog {
	return &pubLog{recs: make(map[string][]pubRecord), node: make(map[string]int)}
}

func (p *pubLog) record(node int, msg string, start time.Time, failed bool) {
	pub, seq, ok := parseSeq(msg)
	if !ok {
		return // not a well-behaved publisher's
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := p.recs[pub]
	if seq != len(recs)+1 {
		if len(p.odd) < 5 {
			p.odd = append(p.odd, fmt.Sprintf("%s: broadcast seq %d after %d", pub, seq, len(recs)))
		}
		return
	}
	p.recs[pub] = append(recs, pubRecord{start: start, at: now, failed: failed})
	p.node[pub] = node
}

// finals returns the last seq broadcast by each publisher of room.
func (p *pubLog) finals(pubs []string) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(pubs))
	for _, pub := range pubs {
		out[pub] = len(p.recs[pub])
	}
	return out
}

func (p *pubLog) get(pub string, seq int) (pubRecord, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := p.recs[pub]
	if seq < 1 || seq > len(recs) {
		return pubRecord{}, 0, false
	}
	return recs[seq-1], p.node[pub], true
}
