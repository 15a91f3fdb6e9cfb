package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexio-go/nexio/hub"
)

// history is the Append side's memory: the stream, as configured, and the
// last position this node knows of each room it appended to.
type history struct {
	mu     sync.Mutex
	stream jetstream.Stream // nil until ensured
	cfg    hub.History      // what the stream was configured for
	gen    uint64           // grows each time the stream is forgotten
	rooms  map[string]*appendState
}

// appendState serialises this node's appends to one room, so that they
// keep their order, and remembers the room's last message.
type appendState struct {
	mu   sync.Mutex
	last hub.Position
	seq  uint64 // stream sequence of last; 0 with last unknown
	ok   bool   // last and seq are known
	gen  uint64 // history.gen when they were read
}

func (h *history) init() { h.rooms = make(map[string]*appendState) }

func (h *history) room(name string) *appendState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.rooms[name]
	if s == nil {
		s = &appendState{}
		h.rooms[name] = s
	}
	return s
}

// ensureStream creates the history stream, or updates its limits to hc,
// once per configuration.
func (b *Broker) ensureStream(ctx context.Context, hc hub.History) (jetstream.Stream, error) {
	b.hist.mu.Lock()
	defer b.hist.mu.Unlock()
	if b.hist.stream != nil && b.hist.cfg == hc {
		return b.hist.stream, nil
	}
	cfg := jetstream.StreamConfig{
		Name:              b.streamName,
		Subjects:          []string{b.histSubj + "*"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(hc.Size),
		MaxAge:            hc.TTL,
		Replicas:          b.opts.Replicas,
	}
	s, err := b.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b.hist.stream, b.hist.cfg = s, hc
	return s, nil
}

// existingStream returns the history stream, or nil if it does not
// exist (no room ever had history).
func (b *Broker) existingStream(ctx context.Context) (jetstream.Stream, error) {
	b.hist.mu.Lock()
	s := b.hist.stream
	b.hist.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := b.js.Stream(ctx, b.streamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return s, err
}

// forgetStream drops what is known of the stream after an error that
// says it is gone (deleted, or lost with a server's data).
func (b *Broker) forgetStream() {
	b.hist.mu.Lock()
	b.hist.stream = nil
	b.hist.gen++
	b.hist.mu.Unlock()
}

// Append stores e in its room's history and publishes it to every node,
// this one included; implements hub.HistoryBroker. The offset is
// assigned atomically with the append: the message is stored with
// JetStream's expected-last-subject-sequence set to the room's last
// message, so that of two nodes appending at once, one is refused and
// tries again after the other. A room with no kept message starts a new
// epoch. Append returns within Options.Timeout: an error wrapping
// ErrUnavailable or ErrTimeout means the message was not stored (with
// ErrTimeout, JetStream may have stored it all the same).
func (b *Broker) Append(ctx context.Context, e hub.Envelope, hc hub.History) (hub.Position, error) {
	if err := b.begin(); err != nil {
		return hub.Position{}, err
	}
	defer b.calls.Done()
	if hc.Size <= 0 {
		return hub.Position{}, fmt.Errorf("natsbroker: Append needs a History with a positive Size, got %d", hc.Size)
	}
	ctx, cancel := b.bounded(ctx)
	defer cancel()
	pos, err := b.append(ctx, e, hc)
	if err != nil {
		b.stats.publishErrors.Add(1)
		return hub.Position{}, err
	}
	b.stats.published.Add(1)
	return pos, nil
}

func (b *Broker) append(ctx context.Context, e hub.Envelope, hc hub.History) (hub.Position, error) {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return hub.Position{}, fmt.Errorf("%w: connection is %v", ErrUnavailable, st)
	}
	if _, err := b.ensureStream(ctx, hc); err != nil {
		return hub.Position{}, natsErr("creating the history stream", err)
	}
	e.Origin, e.Target, e.Presence = b.node, "", nil
	rs := b.hist.room(e.Room)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	subj := b.histSubj + token(e.Room)
	for {
		b.hist.mu.Lock()
		gen := b.hist.gen
		b.hist.mu.Unlock()
		if !rs.ok || rs.gen != gen {
			last, seq, err := b.lastOf(ctx, e.Room)
			if err != nil {
				return hub.Position{}, natsErr("reading the room's last message", err)
			}
			if seq == 0 {
				last = hub.Position{Epoch: newInstance()}
			}
			rs.last, rs.seq, rs.ok, rs.gen = last, seq, true, gen
		}
		e.Position = hub.Position{Epoch: rs.last.Epoch, Offset: rs.last.Offset + 1}
		ack, err := b.js.Publish(ctx, subj, appendEnvelope(nil, e, 0), jetstream.WithExpectLastSequencePerSubject(rs.seq))
		if err != nil {
			rs.ok = false
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				b.stats.conflicts.Add(1)
				continue // another node appended first: read its position, try again
			}
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
				b.forgetStream()
			}
			return hub.Position{}, natsErr("storing the message", err)
		}
		rs.last, rs.seq = e.Position, ack.Sequence
		// Live delivery to every node, this one included. If it is lost,
		// the nodes fill the gap from the stream at the next message.
		b.send(ctx, b.roomSubj+token(e.Room), appendEnvelope(nil, e, ack.Sequence), false)
		return e.Position, nil
	}
}

// lastOf returns the position and stream sequence of room's newest kept
// message; seq 0 when it has none (or there is no stream).
func (b *Broker) lastOf(ctx context.Context, room string) (hub.Position, uint64, error) {
	ctx, cancel := b.bounded(ctx)
	defer cancel()
	s, err := b.existingStream(ctx)
	if err != nil || s == nil {
		return hub.Position{}, 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, b.histSubj+token(room))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return hub.Position{}, 0, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		b.forgetStream()
		return hub.Position{}, 0, nil
	case err != nil:
		return hub.Position{}, 0, err
	}
	w, err := decodeEnvelope(m.Data)
	if err != nil {
		return hub.Position{}, 0, fmt.Errorf("room %q: %w", room, err)
	}
	return w.env.Position, m.Sequence, nil
}

// History returns the kept messages of room after since, oldest first,
// at most limit of them, and the room's current position; implements
// hub.HistoryBroker. It reads the room's subject of the history stream
// with a short-lived consumer, within Options.Timeout; when no consumer
// could be made in half of it (a cluster that lost a server can keep
// failing to), it reads the messages one get at a time in the rest. A
// room with no kept message has the zero position.
func (b *Broker) History(ctx context.Context, room string, since hub.Position, limit int) ([]hub.Entry, hub.Position, error) {
	if err := b.begin(); err != nil {
		return nil, hub.Position{}, err
	}
	defer b.calls.Done()
	ctx, cancel := b.bounded(ctx)
	defer cancel()
	last, seq, err := b.lastOf(ctx, room)
	if err != nil {
		return nil, hub.Position{}, natsErr("reading the room's last message", err)
	}
	if seq == 0 {
		return nil, hub.Position{}, nil
	}
	cctx, ccancel := context.WithTimeout(ctx, b.opts.Timeout/2)
	msgs, err := b.read(cctx, room, since, limit, seq, last)
	ccancel()
	if err != nil && ctx.Err() == nil {
		// No consumer could be made in time (a cluster that lost a
		// server can keep failing to): the same, one get at a time.
		msgs = msgs[:0]
		err = b.readRange(ctx, b.opts.Timeout, room, 1, seq, func(w wireMsg) bool {
			if w.env.Position.Epoch == since.Epoch && w.env.Position.Offset <= since.Offset {
				return true
			}
			msgs = append(msgs, w)
			return limit <= 0 || len(msgs) < limit
		})
	}
	if err != nil {
		return nil, hub.Position{}, natsErr("reading the room's history", err)
	}
	entries := make([]hub.Entry, len(msgs))
	for i, w := range msgs {
		entries[i] = hub.Entry{Position: w.env.Position, Type: w.env.Type, Data: w.env.Data}
	}
	return entries, last, nil
}

// readRange hands keep room's kept messages with stream sequences from
// fromSeq to toSeq, oldest first, until keep returns false. It reads
// them one at a time from the stream's leader (a get of the room's next
// message from a sequence on), without a consumer: after a cluster lost
// a server, making consumers kept failing for tens of seconds
// (nats-server 2.9) while gets answered again once the stream had a
// leader. Each get is bounded by Options.Timeout; a get that fails is
// tried again until ctx ends or giveUp passed without progress.
func (b *Broker) readRange(ctx context.Context, giveUp time.Duration, room string, fromSeq, toSeq uint64, keep func(wireMsg) bool) error {
	subj := b.histSubj + token(room)
	var s jetstream.Stream
	failing := time.Time{} // when the current run of failures began
	for seq := fromSeq; seq <= toSeq; {
		var m *jetstream.RawStreamMsg
		gctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		var err error
		if s == nil {
			s, err = b.existingStream(gctx)
			if err == nil && s == nil {
				cancel()
				return nil // no stream: nothing kept
			}
		}
		if err == nil {
			m, err = s.GetMsg(gctx, seq, jetstream.WithGetMsgSubject(subj))
		}
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > giveUp {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(b.opts.Timeout / 10):
			}
			continue
		}
		failing = time.Time{}
		if m.Sequence > toSeq {
			return nil
		}
		seq = m.Sequence + 1
		w, err := decodeEnvelope(m.Data)
		if err != nil {
			continue
		}
		w.seq = m.Sequence
		if !keep(w) {
			return nil
		}
	}
	return nil
}

// read reads room's messages up to stream sequence lastSeq and keeps
// those after since (all of them when since is of another epoch), at
// most limit (limit <= 0: all).
func (b *Broker) read(ctx context.Context, room string, since hub.Position, limit int, lastSeq uint64, last hub.Position) ([]wireMsg, error) {
	if since.Epoch == last.Epoch && since.Offset >= last.Offset {
		return nil, nil
	}
	s, err := b.existingStream(ctx)
	if err != nil || s == nil {
		return nil, err
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     b.histSubj + token(room),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	name := c.CachedInfo().Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.Timeout)
		s.DeleteConsumer(dctx, name)
		cancel()
	}()
	pending := int(c.CachedInfo().NumPending)
	var out []wireMsg
	for pending > 0 {
		wait := time.Until(deadline(ctx))
		if wait < 10*time.Millisecond {
			return out, context.DeadlineExceeded
		}
		batch, err := c.Fetch(min(pending, 1024), jetstream.FetchMaxWait(wait))
		if err != nil {
			return out, err
		}
		n := 0
		msgs := batch.Messages()
	batchLoop:
		for {
			var m jetstream.Msg
			select {
			case <-ctx.Done():
				// The batch is bounded by FetchMaxWait; this is a second
				// bound, so that a fetch the server never ends cannot
				// hold the receiver.
				return out, ctx.Err()
			case mm, ok := <-msgs:
				if !ok {
					break batchLoop
				}
				m = mm
			}
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			w, err := decodeEnvelope(m.Data())
			if err != nil {
				continue
			}
			w.seq = md.Sequence.Stream
			if md.Sequence.Stream > lastSeq {
				return out, nil
			}
			if w.env.Position.Epoch == since.Epoch && w.env.Position.Offset <= since.Offset {
				continue
			}
			out = append(out, w)
			if limit > 0 && len(out) == limit {
				return out, nil
			}
			if md.Sequence.Stream == lastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && n == 0 {
			return out, err
		}
		if n == 0 {
			break
		}
		pending -= n
	}
	return out, nil
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Minute)
	}
	return d
}
