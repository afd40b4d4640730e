package signalr

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is the application behind a hub endpoint: it receives a connection's
// invocations once the handshake is done. Calls for one connection never run
// concurrently (ASP.NET Core's MaximumParallelInvocationsPerClient = 1).
type Handler interface {
	// OnConnected runs after a successful handshake, before any invocation.
	// An error closes the connection with that error.
	OnConnected(c *Conn) error
	// Invoke runs hub method target. The error's text is sent to the client as
	// the completion error, so it must say what is wrong without leaking
	// internals.
	Invoke(c *Conn, target string, args []any) (result any, err error)
	// OnDisconnected runs once when the connection ends, after OnConnected.
	OnDisconnected(c *Conn)
}

// connState is where a connection is in its life.
type connState uint8

const (
	stateNegotiated  connState = iota // created by negotiate, no transport yet
	stateHandshaking                  // transport attached, waiting for the handshake
	stateConnected                    // handshake done
	stateClosing                      // Close queued; the writer ends the transport after it
	stateClosed
)

// Conn is one logical SignalR connection, whatever its transport. It owns the
// bounded outbound queue: Send never blocks, and frames queued while the
// transport is busy are written together.
type Conn struct {
	ep    *Endpoint
	id    string // public connectionId
	token string // secret connectionToken (the id= of later requests); "" if never negotiated

	// UserData is set by the endpoint's Authenticate hook before the connection
	// starts, for the Handler's use.
	UserData any

	created   time.Time
	lastWrite atomic.Int64 // unix nanoseconds of the last transport write
	lastRead  atomic.Int64 // unix nanoseconds of the last complete incoming message
	pinged    atomic.Bool  // the client has sent a Ping: arms the client timeout

	mu       sync.Mutex
	state    connState
	proto    Protocol
	tr       transport
	queue    [][]byte // shared, immutable frames waiting for the transport
	queued   int      // bytes in queue
	alone    int      // the first alone frames of queue go out in their own write (handshake response)
	writing  bool     // a push transport's writer goroutine is running
	attached time.Time
	done     chan struct{} // closed when the connection has ended

	inbuf []byte // reader side only: bytes of an incomplete message
}

// transport moves a connection's frames. Push transports (WebSockets) are
// written by a goroutine the Conn starts only while frames are queued, so an
// idle connection has no writer goroutine. Pull transports (SSE, long polling)
// have a request goroutine that waits to be woken.
type transport interface {
	// name is the negotiate name, for logs and metrics.
	name() string
	// write sends one batch of whole frames (push transports only).
	write(batch []byte, binary bool) error
	// wake tells a pull transport that frames are queued.
	wake()
	// end stops the transport once the final frames are out.
	end()
	// keepAlive reports whether the transport needs hub Pings (long polling does not).
	keepAlive() bool
	// binary reports whether the transport can carry binary frames (SSE cannot).
	binary() bool
}

// ID returns the public connection id.
func (c *Conn) ID() string { return c.id }

// Protocol returns the hub protocol chosen in the handshake (nil before it).
func (c *Conn) Protocol() Protocol {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto
}

// Transport returns the name of the attached transport ("" if none).
func (c *Conn) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tr == nil {
		return ""
	}
	return c.tr.name()
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send queues a frame encoded in the connection's protocol. It never blocks.
// The frame is shared and must not be modified afterwards. If the queue is
// full the client is too slow: the connection is closed with a Close message
// that allows reconnecting, and Send reports false.
func (c *Conn) Send(frame []byte) bool {
	c.mu.Lock()
	if c.state != stateConnected {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.ep.opts.QueueLength || c.queued+len(frame) > c.ep.opts.QueueBytes {
		c.mu.Unlock()
		c.ep.metrics.SlowConsumer()
		c.ep.log.Warn("closing slow connection: outbound queue full", "conn", c.id, "frames", c.ep.opts.QueueLength)
		c.Close("Connection closed with an error. The client did not read its messages fast enough.", true)
		return false
	}
	c.enqueueLocked(frame)
	c.mu.Unlock()
	return true
}

// enqueueLocked appends frame and wakes the transport. c.mu is held; the
// writer goroutine, if it has to be started, starts without blocking.
func (c *Conn) enqueueLocked(frame []byte) {
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.kickLocked()
}

func (c *Conn) kickLocked() {
	if c.tr == nil {
		return
	}
	if _, push := c.tr.(pushTransport); push {
		if !c.writing {
			c.writing = true
			go c.writeLoop()
		}
		return
	}
	c.tr.wake()
}

// pushTransport marks transports written by the Conn's writer goroutine.
type pushTransport interface{ push() }

// takeBatch removes queued frames and appends them to dst as one batch. It
// reports whether the connection should end after this batch is written.
func (c *Conn) takeBatch(dst []byte) (batch []byte, last bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.queue)
	if c.alone > 0 {
		n, c.alone = c.alone, 0
	}
	for i := 0; i < n; i++ {
		dst = append(dst, c.queue[i]...)
		c.queued -= len(c.queue[i])
		c.queue[i] = nil
	}
	if n == len(c.queue) {
		c.queue = c.queue[:0]
		if cap(c.queue) > 64 { // a burst grew it: give the memory back while idle
			c.queue = nil
		}
	} else {
		c.queue = append(c.queue[:0], c.queue[n:]...)
	}
	return dst, c.state == stateClosing && len(c.queue) == 0
}

// pending reports whether frames are queued or the connection is ending.
func (c *Conn) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 || c.state >= stateClosing
}

// writeLoop writes queued frames for a push transport until the queue is
// empty, then exits: frames queued meanwhile are coalesced into one write.
func (c *Conn) writeLoop() {
	bp := c.ep.writeBuffers.Get().(*[]byte)
	defer c.ep.writeBuffers.Put(bp)
	for {
		batch, last := c.takeBatch((*bp)[:0])
		*bp = batch
		if len(batch) > 0 {
			c.mu.Lock()
			binary := c.proto != nil && c.proto.TransferFormat() == BinaryFormat
			tr := c.tr
			c.mu.Unlock()
			if err := tr.write(batch, binary); err != nil {
				c.ep.log.Debug("write failed", "conn", c.id, "err", err)
				c.finish()
				return
			}
			c.lastWrite.Store(time.Now().UnixNano())
		}
		if last {
			c.finish()
			return
		}
		if cap(*bp) > 64<<10 {
			*bp = make([]byte, 0, 4<<10) // do not pool what one burst grew
		}
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
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
		frame, err := c.proto.AppendMessage(nil, &Message{Type: TypeClose, Error: errText, AllowReconnect: allowReconnect})
		if err == nil {
			c.enqueueLocked(frame)
		}
	}
	c.state = stateClosing
	c.kickLocked()
	c.mu.Unlock()
}

// Abort ends the connection at once, without a Close message (transport lost).
func (c *Conn) Abort() { c.finish() }

// finish tears the connection down exactly once.
func (c *Conn) finish() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	wasConnected := c.state == stateConnected || (c.state == stateClosing && c.proto != nil)
	c.state = stateClosed
	tr, proto := c.tr, c.proto
	c.queue, c.queued = nil, 0
	c.mu.Unlock()
	if tr != nil {
		tr.end()
	}
	close(c.done)
	c.ep.remove(c)
	if wasConnected {
		c.ep.metrics.Disconnected(tr.name(), proto.Name())
		c.ep.handler.OnDisconnected(c)
	}
}

// attach binds a transport to the connection; it fails if one is already
// attached or the connection has ended.
func (c *Conn) attach(tr transport) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state != stateNegotiated:
		return errConnActive
	}
	c.tr = tr
	c.state = stateHandshaking
	c.attached = time.Now()
	c.lastRead.Store(c.attached.UnixNano())
	c.lastWrite.Store(c.attached.UnixNano())
	return nil
}

var errConnActive = errors.New("connection already has a transport")

// receive processes bytes from the client: the handshake first, then hub
// messages. Incomplete trailing bytes are kept for the next call. A non-nil
// error means the connection has been closed.
func (c *Conn) receive(data []byte) error {
	buf := data
	if len(c.inbuf) > 0 {
		c.inbuf = append(c.inbuf, data...)
		buf = c.inbuf
	}
	max := c.ep.opts.MaxMessageSize
	c.mu.Lock()
	proto := c.proto
	c.mu.Unlock()
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
		n, err := proto.ReadMessage(buf, max, &m)
		if err != nil {
			c.ep.metrics.Rejected("protocol_error")
			msg := "Connection closed with an error. " + err.Error()
			c.Close(msg, errors.Is(err, ErrMessageTooLarge))
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
	tr := c.tr
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
	c.enqueueLocked(handshakeOK)
	c.alone = 1 // the handshake response goes out alone (stateful reconnect clients need it)
	c.mu.Unlock()
	if err := c.ep.handler.OnConnected(c); err != nil {
		c.ep.log.Info("connection refused by the hub", "conn", c.id, "err", err)
		c.Close("Connection closed with an error. "+err.Error(), false)
		return n, nil, err
	}
	c.ep.metrics.Connected(tr.name(), proto.Name())
	return n, proto, nil
}

// dispatch handles one hub message from the client.
func (c *Conn) dispatch(proto Protocol, m *Message) error {
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		c.invoke(proto, m)
	case TypePing:
		c.pinged.Store(true)
	case TypeClose:
		c.Close("", false)
		return errors.New("client closed the connection")
	case TypeStreamItem, TypeCompletion, TypeCancelInvocation:
		// The hub has no streaming methods and makes no client-result calls, so
		// these can only refer to ids it never issued: ignored, as ASP.NET does.
	default:
		// Unknown or stateful-reconnect types from newer clients: ignored.
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
// the client timeout and the handshake timeout. It reports whether the
// connection has to be dropped because it never attached a transport in time.
func (c *Conn) heartbeat(now time.Time, ping func(Protocol) []byte) (expired bool) {
	o := &c.ep.opts
	c.mu.Lock()
	state, proto, tr := c.state, c.proto, c.tr
	c.mu.Unlock()
	switch state {
	case stateNegotiated:
		return now.Sub(c.created) > o.DisconnectTimeout
	case stateHandshaking:
		if now.Sub(c.attached) > o.HandshakeTimeout {
			c.ep.metrics.Rejected("handshake_timeout")
			c.Close("Handshake was canceled.", false)
		}
	case stateConnected:
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
			c.Send(ping(proto))
		}
	}
	return false
}

// logAttrs describes the connection for logs.
func (c *Conn) logAttrs() slog.Attr {
	return slog.Group("conn", "id", c.id, "transport", c.Transport())
}
