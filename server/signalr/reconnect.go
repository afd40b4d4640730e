package signalr

import (
	"fmt"
	"time"
)

// Stateful reconnect (ASP.NET Core 8+, "useStatefulReconnect"): when a
// WebSocket drops without a close frame, the logical connection (hub state,
// subscriptions, queued and unacknowledged frames) survives for
// DisconnectTimeout, and a new WebSocket for the same connection token
// reattaches to it. Both sides number their hub messages of types 1-5
// implicitly (1, 2, 3, ...), acknowledge what they received with Ack, and
// after a reattach announce with Sequence where their replay starts.

// reconnectState is a stateful connection's bookkeeping, guarded by Conn.mu.
// Only connections that use the feature carry one.
type reconnectState struct {
	sent replayBuffer // our sequenced frames the client has not acknowledged

	recvNext int64 // sequence id the next incoming sequenced message gets
	recvLast int64 // highest incoming sequence id processed
	acked    int64 // recvLast as last acknowledged to the client

	detachedAt time.Time // when the transport was lost (while detached)
}

func newReconnectState() *reconnectState {
	return &reconnectState{sent: replayBuffer{first: 1}, recvNext: 1}
}

// ackDueLocked returns an Ack frame when messages arrived since the last one.
// ASP.NET Core and the JS client both acknowledge on a one-second timer; the
// endpoint's heartbeat is that timer here.
func (r *reconnectState) ackDueLocked(proto Protocol) []byte {
	if r.recvLast <= r.acked {
		return nil
	}
	frame, err := proto.AppendMessage(nil, &Message{Type: TypeAck, SequenceID: r.recvLast})
	if err != nil {
		return nil
	}
	r.acked = r.recvLast
	return frame
}

// acceptSequenced numbers an incoming sequenced message and reports whether
// it is new; after a reattach the client resends what it has not seen
// acknowledged, and ids up to the last processed one are duplicates.
func (c *Conn) acceptSequenced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.sr
	if r == nil {
		return true
	}
	id := r.recvNext
	r.recvNext++
	if id <= r.recvLast {
		return false
	}
	r.recvLast = id
	return true
}

// acknowledged drops the replay frames the client has confirmed (Ack).
func (c *Conn) acknowledged(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sr != nil {
		c.sr.sent.ack(id)
	}
}

// resetSequence handles the client's Sequence message: the id its replay
// starts with. It may not lie beyond what we have received.
func (c *Conn) resetSequence(id int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.sr
	if r == nil {
		return nil // not negotiated: ignored, like any unknown message
	}
	if id > r.recvNext || id < 1 {
		return fmt.Errorf("%w: Sequence ID %d greater than amount of messages we've received", ErrInvalidMessage, id)
	}
	r.recvNext = id
	return nil
}

// detachLocked parks a stateful connection without a transport. Queued
// frames are dropped: the sequenced ones are in the replay buffer, and the
// others (pings, acks) are worthless on a new socket.
func (c *Conn) detachLocked(now time.Time) {
	c.tr = nil
	c.sr.detachedAt = now
	clear(c.queue)
	c.ep.queuedFrames.Add(-int64(len(c.queue)))
	c.queue, c.queued, c.alone = nil, 0, 0
}

// canReattach reports whether a new WebSocket may take over the connection.
func (c *Conn) canReattach() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sr != nil && c.state == stateConnected
}

// reattach moves a stateful connection to a new WebSocket. The first thing
// the client reads on it is Sequence (always, even with nothing to replay:
// the JS client drops everything until it gets one), then every frame it has
// not acknowledged, in order, then whatever comes next. A transport that is
// somehow still attached is ended.
func (c *Conn) reattach(tr transport) error {
	// Hold the reader lock so that no bytes of the old socket are being
	// processed while the receive state is reset for the new one.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.mu.Lock()
	if c.sr == nil || c.state != stateConnected {
		c.mu.Unlock()
		return errConnGone
	}
	seq, err := c.proto.AppendMessage(nil, &Message{Type: TypeSequence, SequenceID: c.sr.sent.first})
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("encode sequence: %w", err)
	}
	old := c.tr
	c.tr = tr
	clear(c.queue)
	c.ep.queuedFrames.Add(int64(1 + len(c.sr.sent.frames) - len(c.queue)))
	c.queue = append(make([][]byte, 0, 1+len(c.sr.sent.frames)), seq)
	c.queue = append(c.queue, c.sr.sent.frames...)
	c.queued = len(seq) + c.sr.sent.bytes
	c.alone = 0
	c.sr.acked = 0 // our last Ack may have died with the old socket
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	c.kickLocked()
	c.mu.Unlock()
	c.inbuf = nil // a partial message from the old socket will never be completed
	if old != nil {
		old.end()
	}
	return nil
}

// replayBuffer holds sent sequenced frames until the client acknowledges
// them. The frames are the very slices the queue holds (shared, immutable),
// so buffering costs no copies.
type replayBuffer struct {
	frames [][]byte
	first  int64 // sequence id of frames[0]; the next id to send when empty
	bytes  int
}

// push appends the next sequenced frame unless the buffer would exceed limit
// bytes.
func (b *replayBuffer) push(frame []byte, limit int) bool {
	if b.bytes+len(frame) > limit {
		return false
	}
	b.frames = append(b.frames, frame)
	b.bytes += len(frame)
	return true
}

// ack drops the frames with sequence ids up to id.
func (b *replayBuffer) ack(id int64) {
	n := int(min(id-b.first+1, int64(len(b.frames))))
	if n <= 0 {
		return
	}
	for _, f := range b.frames[:n] {
		b.bytes -= len(f)
	}
	rest := copy(b.frames, b.frames[n:])
	clear(b.frames[rest:])
	b.frames = b.frames[:rest]
	b.first += int64(n)
	if rest == 0 && cap(b.frames) > 16 {
		b.frames = nil // an idle connection keeps no burst-sized buffer
	}
}
