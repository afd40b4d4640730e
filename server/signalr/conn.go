package signalr

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is the application behind a hub endpoint: it receives a connection's
// invocations once the handshake is done. Calls for one connection never run
// concurrently (ASP.NET Core's MaximumParallelInvocationsPerClient = 1), and
// OnDisconnected runs only after the last Invoke has returned.
type Handler interface {
	// OnConnected runs after a successful handshake, before any invocation.
	// An error closes the connection with that error.
	OnConnected(c *Conn) error
	// Invoke runs hub method target. The error's text is sent to the client as
	// the completion error, so it must say what is wrong without leaking
	// internals.
	Invoke(c *Conn, target string, args []any) (result any, err error)
	// OnDisconnected runs once when a connection whose OnConnected succeeded
	// ends.
	OnDisconnected(c *Conn)
}

// connState is where a connection is in its life.
type connState uint8

const (
	stateNegotiated  connState = iota // created by negotiate, no transport yet
	stateHandshaking                  // transport attached, waiting for the handshake
	stateConnected                    // handshake done
	stateClosing                      // Close queued; the transport ends after it
	stateClosed
)

// Conn is one logical SignalR connection, whatever its transport. It owns the
// bounded outbound queue: Send never blocks, and frames queued while the
// transport is busy are written together.
type Conn struct {
	ep    *Endpoint
	id    string // public connectionId
	token string // secret connectionToken (the id= of later requests)

	// UserData is set by the endpoint's Authenticate hook before the connection
	// starts, for the Handler's use.
	UserData any

	// Fields are ordered to pack: this struct is most of an idle connection.
	created   int64        // unix nanoseconds of negotiate (or of the skipNegotiation upgrade)
	lastWrite atomic.Int64 // unix nanoseconds of the last transport write
	lastRead  atomic.Int64 // unix nanoseconds of the last complete incoming message
	pinged    atomic.Bool  // the client has sent a Ping: arms the client timeout

	mu       sync.Mutex
	state    connState
	kind     transportKind // the transport the connection started with
	stateful bool          // negotiate agreed to stateful reconnect (used if the client handshakes v2 over WebSockets)
	writing  bool          // a push transport's writer goroutine is running
	alone    uint8         // the first alone frames of queue go out in their own write (handshake response)
	ready    bool          // OnConnected succeeded (written under rmu, read under rmu)
	held     bool          // OnConnected is running: queue, but send nothing yet
	proto    Protocol
	tr       transport       // nil before the transport starts and while a stateful connection waits for its client to reattach
	queue    [][]byte        // shared, immutable frames waiting for the transport
	queued   int             // bytes in queue
	attached int64           // unix nanoseconds of the transport start
	done     chan struct{}   // closed when the connection has ended
	sr       *reconnectState // stateful reconnect bookkeeping; nil unless the feature is on

	// rmu is held while client bytes are processed. HTTP transports deliver
	// them in concurrent POSTs, which it serialises (ASP.NET Core does the
	// same), and finish takes it before OnDisconnected so that no Invoke can
	// run after, or alongside, the disconnect.
	rmu   sync.Mutex
	inbuf []byte // bytes of an incomplete message (under rmu)
}

// ID returns the public connection id.
func (c *Conn) ID() string { return c.id }

// Protocol returns the hub protocol chosen in the handshake (nil before it).
func (c *Conn) Protocol() Protocol {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto
}

// Transport returns the name of the connection's transport ("" if none has
// started yet).
func (c *Conn) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kind.String()
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send queues a hub message frame (an Invocation, StreamItem or Completion)
// encoded in the connection's protocol. It never blocks. The frame is shared
// and must not be modified afterwards. If the queue is full the client is too
// slow: the connection is closed with a Close message that allows
// reconnecting, and Send reports false. With stateful reconnect the frame is
// also kept for replay until the client acknowledges it; a client that lets
// that buffer overflow is closed the same way, so nothing is lost silently.
func (c *Conn) Send(frame []byte) bool {
	c.mu.Lock()
	if c.state != stateConnected {
		c.mu.Unlock()
		return false
	}
	o := &c.ep.opts
	// With stateful reconnect, everything queued but pings is also in the
	// replay buffer, whose bound (below) is the one that applies: a replay
	// may queue more frames than QueueLength at once.
	if c.tr != nil && c.sr == nil && (len(c.queue) >= o.QueueLength || c.queued+len(frame) > o.QueueBytes) {
		c.mu.Unlock()
		c.ep.metrics.SlowConsumer()
		c.ep.log.Warn("closing slow connection: outbound queue full", "conn", c.id, "frames", o.QueueLength)
		c.Close("Connection closed with an error. The client did not read its messages fast enough.", true)
		return false
	}
	if c.sr != nil {
		if !c.sr.sent.push(frame, o.StatefulReconnectBufferSize) {
			c.mu.Unlock()
			c.ep.metrics.SlowConsumer()
			c.ep.log.Warn("closing connection: stateful reconnect buffer full", "conn", c.id, "bytes", o.StatefulReconnectBufferSize)
			c.Close("Connection closed with an error. The stateful reconnect buffer is full: the client did not acknowledge its messages in time.", true)
			return false
		}
		if c.tr == nil {
			// Detached: the frame goes out in the replay when the client reattaches.
			c.mu.Unlock()
			return true
		}
	}
	c.enqueueLocked(frame)
	c.mu.Unlock()
	return true
}

// sendControl queues a frame that is not sequenced (Ping, Ack): it is never
// kept for replay and is dropped while no transport is attached.
func (c *Conn) sendControl(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateConnected && c.tr != nil {
		c.enqueueLocked(frame)
	}
}

// enqueueLocked appends frame and wakes the transport. c.mu is held; the
// writer goroutine, if it has to be started, starts without blocking.
func (c *Conn) enqueueLocked(frame []byte) {
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.ep.queuedFrames.Add(1)
	c.kickLocked()
}

func (c *Conn) kickLocked() {
	if c.tr == nil || c.held {
		return
	}
	if _, push := c.tr.(pushTransport); push {
		if !c.writing {
			c.writing = true
			c.ep.writers.kick(c)
		}
		return
	}
	c.tr.wake()
}

// batch is what a transport writes in one go: whole frames only.
type batch struct {
	data   []byte
	tr     transport // the transport the frames were taken for
	binary bool      // the frames need a binary-capable unit (WebSocket opcode)
	last   bool      // the connection ends once data is written
	closed bool      // the connection has ended; nothing more will come
}

// takeBatch removes queued frames and appends them to dst as one batch. With
// want set it takes nothing unless want is the attached transport, so a pull
// transport never takes frames meant for another.
func (c *Conn) takeBatch(want transport, dst []byte) batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := batch{data: dst, tr: c.tr, closed: c.state == stateClosed}
	if c.tr == nil || (want != nil && c.tr != want) {
		return b
	}
	if c.held {
		return b
	}
	b.binary = c.proto != nil && c.proto.TransferFormat() == BinaryFormat
	n := len(c.queue)
	if c.alone > 0 {
		n, c.alone = min(int(c.alone), n), 0
	}
	for i := 0; i < n; i++ {
		b.data = append(b.data, c.queue[i]...)
		c.queued -= len(c.queue[i])
		c.queue[i] = nil
	}
	c.ep.queuedFrames.Add(-int64(n))
	if n == len(c.queue) {
		c.queue = c.queue[:0]
		if cap(c.queue) > 64 { // a burst grew it: give the memory back while idle
			c.queue = nil
		}
	} else {
		c.queue = append(c.queue[:0], c.queue[n:]...)
	}
	b.last = c.state == stateClosing && len(c.queue) == 0
	return b
}

// writeTurn is a pool writer's turn at c (see writerPool): it takes the
// queued frames and writes them if the socket takes them at once. If it
// does not, a goroutine of c's own finishes the write and goes on writing c
// for as long as it has frames (writeSlow). Otherwise c goes back in line if
// more frames were queued meanwhile.
func (c *Conn) writeTurn(a *attempt) {
	bp := c.ep.writeBuffers.Get().(*[]byte)
	b := c.takeBatch(nil, (*bp)[:frameHeadroom])
	*bp = b.data[:0]
	if len(b.data) > frameHeadroom {
		rest, held, err := b.tr.tryWrite(b.data, b.binary, a)
		if err == nil && rest != nil {
			go c.writeSlow(b, rest, held, bp)
			return
		}
		c.wrote(b.tr, err)
	}
	if c.doneWith(b, bp) {
		c.ep.writers.kick(c)
	}
}

// writeSlow finishes a write the socket did not take at once (rest, the
// unwritten end of b's frame; held: the transport's write lock is already
// ours), then writes c's frames on this goroutine until the queue is empty.
func (c *Conn) writeSlow(b batch, rest []byte, held bool, bp *[]byte) {
	c.wrote(b.tr, b.tr.finishWrite(rest, held))
	if c.doneWith(b, bp) {
		c.writeLoop()
	}
}

// wrote records how a write of a batch on tr ended.
func (c *Conn) wrote(tr transport, err error) {
	if err != nil {
		c.ep.log.Debug("write failed", "conn", c.id, "err", err)
		c.transportLost(tr, false)
		return
	}
	c.lastWrite.Store(time.Now().UnixNano())
}

// doneWith returns a written batch's buffer and reports whether c has more
// to write; not if b was its last (c is finished).
func (c *Conn) doneWith(b batch, bp *[]byte) bool {
	c.putWriteBuffer(bp)
	if b.last {
		c.finish()
		return false
	}
	return c.moreToWrite()
}

// writeLoop writes queued frames with blocking writes until the queue is
// empty, coalescing the frames queued meanwhile into one write: it is the
// writer of a connection whose socket is slow. It follows the connection to
// a new transport after a stateful reattach.
func (c *Conn) writeLoop() {
	bp := c.ep.writeBuffers.Get().(*[]byte)
	defer c.putWriteBuffer(bp)
	for {
		b := c.takeBatch(nil, (*bp)[:frameHeadroom])
		*bp = b.data[:0]
		if len(b.data) > frameHeadroom {
			c.wrote(b.tr, b.tr.write(b.data, b.binary))
		}
		if b.last {
			c.finish()
			return
		}
		if !c.moreToWrite() {
			return
		}
	}
}

// moreToWrite reports whether the writer has more to do for c; if not, c
// has no writer any more (the next frame queued kicks one).
func (c *Conn) moreToWrite() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || c.tr == nil || c.held || c.state == stateClosed {
		c.writing = false
		return false
	}
	return true
}

func (c *Conn) putWriteBuffer(bp *[]byte) {
	if cap(*bp) > 64<<10 {
		*bp = make([]byte, 0, c.ep.opts.WriteBufferSize) // do not pool what one burst grew
	}
	c.ep.writeBuffers.Put(bp)
}

// Close ends the connection: it queues a Close message (with error and
// allowReconnect as given) behind the frames already queued and lets the
// transport finish. It is safe to call more than once and from any goroutine.
func (c *Conn) Close(errText string, allowReconnect bool) {
	c.mu.Lock()
	switch c.state {
	case stateClosing, stateClosed:
		c.mu.Unlock()
		return
	case stateNegotiated:
		c.mu.Unlock()
		c.finish()
		return
	case stateHandshaking:
		// Before the handshake the only thing a client can read is a handshake response.
		if errText != "" {
			c.enqueueLocked(appendHandshakeError(nil, errText))
		}
	case stateConnected:
		// A detached stateful connection has nothing to carry the Close
		// message; the heartbeat ends it (finish must not run here: Close may
		// be called from inside Invoke, which finish waits for).
		if c.tr != nil {
			frame, err := c.proto.AppendMessage(nil, &Message{Type: TypeClose, Error: errText, AllowReconnect: allowReconnect})
			if err == nil {
				c.enqueueLocked(frame)
			}
		}
	}
	c.state = stateClosing
	c.kickLocked()
	c.mu.Unlock()
}

// Abort ends the connection at once, without a Close message (transport
// lost). It waits for an Invoke in progress, so a Handler must not call it
// from inside Invoke or OnConnected (Close is safe anywhere).
func (c *Conn) Abort() { c.finish() }

// finish tears the connection down exactly once.
func (c *Conn) finish() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	tr, proto, kind := c.tr, c.proto, c.kind
	c.ep.queuedFrames.Add(-int64(len(c.queue)))
	c.queue, c.queued, c.sr = nil, 0, nil
	c.mu.Unlock()
	if tr != nil {
		tr.end()
	}
	close(c.done)
	c.ep.remove(c, kind)
	// Wait for the client bytes being processed, if any: an Invoke that is
	// running completes before OnDisconnected, and none starts after it.
	c.rmu.Lock()
	ready := c.ready
	c.inbuf = nil
	c.rmu.Unlock()
	if ready {
		c.ep.metrics.Disconnected(kind.String(), proto.Name())
		c.ep.handler.OnDisconnected(c)
	}
}

// attach binds the connection's first transport; it fails if one has already
// started or the connection has ended.
func (c *Conn) attach(tr transport, kind transportKind) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateNegotiated {
		return errConnActive
	}
	c.tr, c.kind, c.state = tr, kind, stateHandshaking
	c.attached = time.Now().UnixNano()
	c.lastRead.Store(c.attached)
	c.lastWrite.Store(c.attached)
	return nil
}

// transportLost handles the end of transport tr that the connection did not
// ask for. A stateful connection whose client did not close on purpose
// (graceful: a WebSocket close frame) keeps its state and waits for the client
// to reattach; any other ends.
func (c *Conn) transportLost(tr transport, graceful bool) {
	c.mu.Lock()
	if c.tr != tr || c.state == stateClosed {
		c.mu.Unlock() // already replaced by a reattach, or over
		return
	}
	if c.sr != nil && !graceful && c.state == stateConnected {
		c.detachLocked(time.Now())
		c.mu.Unlock()
		tr.end()
		c.ep.log.Debug("transport lost; waiting for the client to reattach", "conn", c.id)
		return
	}
	c.mu.Unlock()
	c.finish()
}

// snapshot returns the connection's state, transport kind and attached transport.
func (c *Conn) snapshot() (connState, transportKind, transport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.kind, c.tr
}

var (
	errConnActive    = errors.New("connection already has a transport")
	errConnGone      = errors.New("connection has ended")
	errStaleReader   = errors.New("the transport was replaced")
	errPullTransport = errors.New("pull transports are not written by the connection")
)

// receive processes bytes that arrived over transport tr: the handshake
// first, then hub messages. Incomplete trailing bytes are kept for the next
// call. A non-nil error means the connection is closing, has ended, or (with
// errStaleReader) tr is no longer its transport.
func (c *Conn) receive(tr transport, data []byte) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.mu.Lock()
	proto, state, current := c.proto, c.state, c.tr == tr
	c.mu.Unlock()
	switch {
	case state == stateClosed:
		return errConnGone
	case !current:
		return errStaleReader
	case state == stateClosing:
		return nil // the Close message is on its way; nothing the client says matters now
	}
	buf := data
	if len(c.inbuf) > 0 {
		c.inbuf = append(c.inbuf, data...)
		buf = c.inbuf
	}
	maxSize := c.ep.opts.MaxMessageSize
	for len(buf) > 0 {
		if proto == nil {
			n, p, err := c.handshake(buf)
			if err != nil || n == 0 {
				c.keep(buf, n)
				return err
			}
			buf, proto = buf[n:], p
			continue
		}
		var m Message
		n, err := proto.ReadMessage(buf, maxSize, &m)
		if err != nil {
			c.ep.metrics.Rejected("protocol_error")
			c.Close("Connection closed with an error. "+err.Error(), errors.Is(err, ErrMessageTooLarge))
			return fmt.Errorf("read message: %w", err)
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		c.lastRead.Store(time.Now().UnixNano())
		if err := c.dispatch(proto, &m); err != nil {
			return err
		}
	}
	c.keep(buf, 0)
	return nil
}

// keep stores the unread tail of buf (after n used bytes) for the next call.
func (c *Conn) keep(buf []byte, n int) {
	rest := buf[n:]
	if len(rest) == 0 {
		c.inbuf = nil
		return
	}
	c.inbuf = append(make([]byte, 0, len(rest)), rest...)
}

// handshake reads the handshake request at the start of buf and answers it.
func (c *Conn) handshake(buf []byte) (int, Protocol, error) {
	req, n, err := ReadHandshakeRequest(buf, c.ep.opts.MaxMessageSize)
	if n == 0 && err == nil {
		return 0, nil, nil
	}
	fail := func(text string) (int, Protocol, error) {
		c.ep.metrics.Rejected("handshake")
		c.Close(text, false)
		return n, nil, errors.New(text)
	}
	if err != nil {
		if errors.Is(err, ErrMessageTooLarge) {
			return fail("Handshake was canceled.")
		}
		return fail("An unexpected error occurred during connection handshake. " + err.Error())
	}
	proto := c.ep.protocol(req.Protocol)
	if proto == nil {
		return fail(fmt.Sprintf("The protocol '%s' is not supported.", req.Protocol))
	}
	if req.Version < 0 || req.Version > 2 {
		return fail(fmt.Sprintf("The server does not support version %d of the '%s' protocol.", req.Version, req.Protocol))
	}
	c.mu.Lock()
	tr, kind := c.tr, c.kind
	c.mu.Unlock()
	if proto.TransferFormat() == BinaryFormat && !tr.binary() {
		return fail(fmt.Sprintf("Cannot use the '%s' protocol on the current transport. The transport does not support 'Binary' transfer format.", req.Protocol))
	}
	c.mu.Lock()
	if c.state != stateHandshaking {
		c.mu.Unlock()
		return n, nil, errors.New("connection closed during the handshake")
	}
	c.proto = proto
	c.state = stateConnected
	// Stateful reconnect needs all of: the endpoint and the client agreed in
	// negotiate, WebSockets, and handshake version 2 (ASP.NET Core silently
	// turns it off for version 1, and the JS client only uses it on WebSockets).
	if c.stateful && kind == kindWebSockets && req.Version >= 2 {
		c.sr = newReconnectState()
	}
	// The handshake response is held back until OnConnected has run, so a
	// client that sees it is connected is also subscribed to what the hub
	// subscribes it to there (stream endpoints), and whatever OnConnected
	// queues goes out after it.
	c.held = true
	c.enqueueLocked(handshakeOK)
	c.alone = 1 // the handshake response goes out alone (stateful reconnect clients need it)
	c.mu.Unlock()
	err = c.ep.handler.OnConnected(c)
	if err != nil {
		c.ep.log.Info("connection refused by the hub", "conn", c.id, "err", err)
		c.Close("Connection closed with an error. "+err.Error(), false)
	}
	c.mu.Lock()
	c.held = false
	c.kickLocked()
	c.mu.Unlock()
	if err != nil {
		return n, nil, err
	}
	c.ready = true
	c.ep.metrics.Connected(kind.String(), proto.Name())
	return n, proto, nil
}

// dispatch handles one hub message from the client.
func (c *Conn) dispatch(proto Protocol, m *Message) error {
	if m.Type.Sequenced() && !c.acceptSequenced() {
		return nil // a duplicate the client resent after reattaching
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		c.invoke(proto, m)
	case TypePing:
		c.pinged.Store(true)
	case TypeClose:
		c.Close("", false)
		return errors.New("client closed the connection")
	case TypeAck:
		c.acknowledged(m.SequenceID)
	case TypeSequence:
		if err := c.resetSequence(m.SequenceID); err != nil {
			c.ep.metrics.Rejected("protocol_error")
			c.Close("Connection closed with an error. "+err.Error(), true)
			return err
		}
	case TypeStreamItem, TypeCompletion, TypeCancelInvocation:
		// The hub has no streaming methods and makes no client-result calls, so
		// these can only refer to ids it never issued: ignored, as ASP.NET does.
	default:
		// Unknown types from newer clients: ignored.
	}
	return nil
}

func (c *Conn) invoke(proto Protocol, m *Message) {
	var (
		result any
		err    error
	)
	if m.Type == TypeStreamInvocation || len(m.StreamIDs) > 0 {
		err = fmt.Errorf("Failed to invoke '%s': this hub has no streaming methods.", m.Target)
	} else {
		result, err = c.ep.handler.Invoke(c, m.Target, m.Arguments)
	}
	if m.InvocationID == "" {
		if err != nil {
			c.ep.log.Debug("fire-and-forget invocation failed", "conn", c.id, "target", m.Target, "err", err)
		}
		return // fire-and-forget: never answered
	}
	reply := Message{Type: TypeCompletion, InvocationID: m.InvocationID}
	if err != nil {
		reply.Error = err.Error()
	} else if result != nil {
		reply.Result, reply.HasResult = result, true
	}
	frame, encErr := proto.AppendMessage(nil, &reply)
	if encErr != nil {
		c.ep.log.Error("encode completion", "conn", c.id, "target", m.Target, "err", encErr)
		frame, _ = proto.AppendMessage(nil, &Message{Type: TypeCompletion, InvocationID: m.InvocationID,
			Error: fmt.Sprintf("An unexpected error occurred invoking '%s' on the server.", m.Target)})
	}
	c.Send(frame)
}

// heartbeat runs once a second from the endpoint's timer: keep-alive pings,
// Acks, and the handshake, client and disconnect timeouts. It reports whether
// the connection has to be ended now.
func (c *Conn) heartbeat(now time.Time, ping func(Protocol) []byte) (expired bool) {
	o := &c.ep.opts
	c.mu.Lock()
	state, proto, tr := c.state, c.proto, c.tr
	var ack []byte
	if c.sr != nil && tr != nil && state == stateConnected {
		ack = c.sr.ackDueLocked(proto)
	}
	detachedFor := time.Duration(0)
	if c.sr != nil && tr == nil {
		detachedFor = now.Sub(c.sr.detachedAt)
	}
	c.mu.Unlock()
	if state == stateNegotiated {
		return time.Duration(now.UnixNano()-c.created) > o.DisconnectTimeout
	}
	if state == stateClosed {
		return false
	}
	if tr == nil {
		// A stateful connection waiting for its client to reattach, or one
		// that was closed meanwhile and has nothing to deliver a Close with.
		if state == stateConnected && detachedFor > o.DisconnectTimeout {
			c.ep.metrics.Rejected("disconnect_timeout") // the client did not reattach in time
			return true
		}
		return state == stateClosing
	}
	if tr.idle(now) > o.DisconnectTimeout {
		c.ep.metrics.Rejected("disconnect_timeout")
		return true // a long-polling client that stopped polling
	}
	switch state {
	case stateHandshaking:
		if time.Duration(now.UnixNano()-c.attached) > o.HandshakeTimeout {
			c.ep.metrics.Rejected("handshake_timeout")
			c.Close("Handshake was canceled.", false)
		}
	case stateConnected:
		if ack != nil {
			c.sendControl(ack)
		}
		if !tr.keepAlive() {
			return false
		}
		if c.pinged.Load() && now.UnixNano()-c.lastRead.Load() > int64(o.ClientTimeout) {
			c.ep.metrics.Rejected("client_timeout")
			c.Close("Connection closed with an error. The client sent nothing within the client timeout.", true)
			return false
		}
		if now.UnixNano()-c.lastWrite.Load() >= int64(o.KeepAliveInterval) {
			c.lastWrite.Store(now.UnixNano()) // do not queue a second ping while this one waits
			c.sendControl(ping(proto))
		}
	}
	return false
}
