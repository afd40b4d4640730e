package signalr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
)

// wsTransport carries a connection over a WebSocket: text frames for text
// protocols, binary frames for binary ones, one hub-message batch per frame.
//
// It frames and writes data, pong and close frames itself, straight to the
// socket, rather than through the library's writer: that one sets the
// socket's write deadline before every write (a runtime timer update each
// time) and takes a channel lock, which at low rates, where every
// notification is a write of its own, is a tenth of the hub's CPU per
// delivery. The writer pool's writes do not wait for the socket at all and
// need no deadline (tryWrite); the blocking writes of a slow socket's own
// writer move the deadline only when it is less than half the send timeout
// away, so a write that blocks fails after at least half the send timeout
// and at most the whole of it. The library still reads.
type wsTransport struct {
	ws      *websocket.Conn // the library connection, not the pooled contrib wrapper
	nc      net.Conn        // its socket
	rc      syscall.RawConn // the socket's descriptor, for writes that must not wait; nil if it has none
	timeout time.Duration

	// wmu serialises the frames on the socket and guards what follows.
	wmu       sync.Mutex
	deadline  time.Time // the socket's write deadline as last set; zero: none
	closeSent bool      // a close frame is out: nothing may follow it
	werr      error     // a failed write may have left a partial frame: the stream is over

	// fasthttp recycles a hijacked connection as soon as the WebSocket
	// handler returns, while the Conn's writer or an end from another
	// goroutine may still be using it: they hold use for reading, and the
	// handler takes it for writing (release) before it returns. use is
	// always taken before wmu.
	use  sync.RWMutex
	gone bool
}

func newWSTransport(ws *websocket.Conn, timeout time.Duration) *wsTransport {
	t := &wsTransport{ws: ws, nc: ws.NetConn(), timeout: timeout}
	t.rc = rawConn(t.nc)
	// The library's own replies would write beside this writer; these go
	// through it. Errors are the writer's to notice.
	ws.SetPingHandler(func(data string) error {
		_ = t.control(websocket.PongMessage, []byte(data))
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		_ = t.control(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
		return nil
	})
	return t
}

func (*wsTransport) push()                        {}
func (*wsTransport) wake()                        {}
func (*wsTransport) keepAlive() bool              { return true }
func (*wsTransport) binary() bool                 { return true }
func (*wsTransport) idle(time.Time) time.Duration { return 0 }

var errSocketReleased = errors.New("the WebSocket handler has returned")

// frameHeadroom is the room a batch leaves at its front for the frame
// header: a server's header is at most 10 bytes (no mask).
const frameHeadroom = 10

func dataOp(binary bool) byte {
	if binary {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

// write sends batch[frameHeadroom:] as one data frame, waiting for the
// socket up to the send timeout.
func (t *wsTransport) write(batch []byte, binary bool) error {
	return t.writeFrame(dataOp(binary), batch, false)
}

// tryWrite sends batch[frameHeadroom:] as one data frame as far as the
// socket takes it without waiting, with a writer's attempt a. If it does not
// take it all, rest is the unwritten end of the frame: with held, the write
// lock (and use) stay taken for finishWrite, since nothing else may go on
// the wire before it.
func (t *wsTransport) tryWrite(batch []byte, binary bool, a *attempt) (rest []byte, held bool, err error) {
	t.use.RLock()
	if t.gone {
		t.use.RUnlock()
		return nil, false, errSocketReleased
	}
	frame := putFrameHeader(batch, dataOp(binary))
	if t.rc == nil || !t.wmu.TryLock() {
		// No way to write without waiting, or a pong or close frame is on
		// its way: the slow path waits.
		t.use.RUnlock()
		return frame, false, nil
	}
	n, err := t.tryLocked(frame, a)
	if err == nil && n < len(frame) {
		return frame[n:], true, nil
	}
	t.wmu.Unlock()
	t.use.RUnlock()
	return nil, false, err
}

func (t *wsTransport) tryLocked(frame []byte, a *attempt) (int, error) {
	if err := t.usableLocked(); err != nil {
		return 0, err
	}
	if !t.deadline.IsZero() {
		// One a blocking write left behind would fail this write once passed.
		t.deadline = time.Time{}
		if err := t.nc.SetWriteDeadline(time.Time{}); err != nil {
			t.werr = err
			return 0, err
		}
	}
	n, err := a.do(t.rc, frame)
	if err != nil {
		t.werr = err
	}
	return n, err
}

// finishWrite writes the rest of a frame that tryWrite began, waiting for
// the socket up to the send timeout.
func (t *wsTransport) finishWrite(rest []byte, held bool) error {
	if !held {
		t.use.RLock()
		if t.gone {
			t.use.RUnlock()
			return errSocketReleased
		}
		t.wmu.Lock()
	}
	defer t.use.RUnlock()
	defer t.wmu.Unlock()
	if t.gone {
		return errSocketReleased
	}
	if err := t.usableLocked(); err != nil {
		return err
	}
	return t.writeLocked(rest, time.Time{})
}

// control sends a pong or close frame.
func (t *wsTransport) control(op byte, payload []byte) error {
	buf := append(make([]byte, frameHeadroom, frameHeadroom+len(payload)), payload...)
	return t.writeFrame(op, buf, false)
}

// writeFrame puts the header of a final frame of type op into the headroom
// of buf and writes the frame in one system call, waiting for the socket up
// to the send timeout. With tryLock it does not wait for a write in
// progress (errWriteBusy).
func (t *wsTransport) writeFrame(op byte, buf []byte, tryLock bool) error {
	t.use.RLock()
	defer t.use.RUnlock()
	if t.gone {
		return errSocketReleased
	}
	frame := putFrameHeader(buf, op)
	if tryLock {
		if !t.wmu.TryLock() {
			return errWriteBusy
		}
	} else {
		t.wmu.Lock()
	}
	defer t.wmu.Unlock()
	if err := t.usableLocked(); err != nil {
		return err
	}
	var dl time.Time
	if op == websocket.CloseMessage {
		// The close frame is a courtesy: a second is all it gets.
		t.closeSent = true
		dl = time.Now().Add(min(time.Second, t.timeout))
	}
	return t.writeLocked(frame, dl)
}

func (t *wsTransport) usableLocked() error {
	switch {
	case t.werr != nil:
		return t.werr
	case t.closeSent:
		return websocket.ErrCloseSent
	}
	return nil
}

// writeLocked writes b, waiting for the socket until deadline (zero: the
// send timeout). The socket's deadline is only moved when it is less than
// half the send timeout away.
func (t *wsTransport) writeLocked(b []byte, deadline time.Time) error {
	now := time.Now()
	if deadline.IsZero() && t.deadline.Sub(now) < t.timeout/2 {
		deadline = now.Add(t.timeout)
	}
	if !deadline.IsZero() {
		t.deadline = deadline
		if err := t.nc.SetWriteDeadline(deadline); err != nil {
			t.werr = err
			return err
		}
	}
	if _, err := t.nc.Write(b); err != nil {
		t.werr = err
		return err
	}
	return nil
}

var errWriteBusy = errors.New("a write is in progress")

// putFrameHeader writes the header of a final, unmasked frame of type op
// whose payload is buf[frameHeadroom:] just before the payload, and returns
// the frame.
func putFrameHeader(buf []byte, op byte) []byte {
	n := len(buf) - frameHeadroom
	var s int
	switch {
	case n <= 125:
		s = frameHeadroom - 2
		buf[s+1] = byte(n)
	case n <= 0xffff:
		s = frameHeadroom - 4
		buf[s+1] = 126
		binary.BigEndian.PutUint16(buf[s+2:], uint16(n))
	default:
		s = frameHeadroom - 10
		buf[s+1] = 127
		binary.BigEndian.PutUint64(buf[s+2:], uint64(n))
	}
	buf[s] = 0x80 | op // FIN
	return buf[s:]
}

// end sends a normal close frame and closes the socket, which also ends the
// reader. A write in progress is not waited for: it may be stuck on a client
// that does not read, and closing the socket ends it at once. (The clean
// endings do not meet one: the writer ends the transport itself after the
// last batch, and a client's close frame is answered by the close handler.)
func (t *wsTransport) end() {
	buf := append(make([]byte, frameHeadroom, frameHeadroom+2), websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")...)
	if err := t.writeFrame(websocket.CloseMessage, buf, true); errors.Is(err, errSocketReleased) {
		return
	}
	t.use.RLock()
	defer t.use.RUnlock()
	if !t.gone {
		_ = t.ws.Close()
	}
}

// release is the handler's last act: closing the socket makes a write in
// progress fail at once, and once it has, nothing touches the socket again.
func (t *wsTransport) release() {
	_ = t.ws.Close()
	t.use.Lock()
	t.gone = true
	t.use.Unlock()
}

// upgradeWebSocket checks a WebSocket request before the upgrade, so that
// refusals are plain HTTP statuses the clients understand: without an id it
// is a skipNegotiation client and gets a new connection; with one it starts
// the negotiated connection, or reattaches a stateful one whose socket
// dropped (404 once that one has ended).
func (e *Endpoint) upgradeWebSocket(c *fiber.Ctx, upgrade fiber.Handler) error {
	if !e.transportEnabled(kindWebSockets) {
		return transportNotSupported(c, kindWebSockets)
	}
	var conn *Conn
	if c.Query("id") == "" {
		user, err := e.authenticate(c)
		if err != nil {
			return err
		}
		if conn, err = e.newConn(user, 0, false); err != nil {
			return httpErrorResponse(c, statusOf(err), err)
		}
	} else {
		var ended bool
		var err error
		if conn, _, ended, err = e.findConn(c); err != nil {
			return err
		}
		if ended {
			return plainError(c, fiber.StatusNotFound, msgUnknownID)
		}
		switch _, kind, _ := conn.snapshot(); {
		case kind == kindNone:
		case kind != kindWebSockets:
			return plainError(c, fiber.StatusBadRequest, msgTransportChange)
		case !conn.canReattach():
			return plainError(c, fiber.StatusConflict, msgActive)
		}
	}
	c.Locals(localConn, conn)
	return upgrade(c)
}

// serveWebSocket runs a WebSocket for c until it ends. It is the reader: each
// WebSocket message is fed to the connection as bytes, whatever its opcode
// (the Java client sends JSON in binary frames).
func (e *Endpoint) serveWebSocket(ws *websocket.Conn, c *Conn) {
	ws.SetReadLimit(int64(e.opts.MaxMessageSize) * 4)
	t := newWSTransport(ws, e.opts.SendTimeout)
	defer t.release()
	var err error
	if _, kind, _ := c.snapshot(); kind == kindNone {
		err = c.attach(t, kindWebSockets)
	} else {
		err = c.reattach(t)
	}
	if err != nil {
		e.log.Debug("websocket refused", "conn", c.id, "err", err)
		return
	}
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			if err == websocket.ErrReadLimit {
				e.metrics.Rejected("message_too_large")
				c.Close("Connection closed with an error. The message exceeds the maximum message size.", true)
				e.waitClosed(c)
				c.transportLost(t, true)
				return
			}
			c.transportLost(t, closeFrameReceived(err))
			return
		}
		bp := e.writeBuffers.Get().(*[]byte)
		msg := bytes.NewBuffer((*bp)[:0]) // a pooled buffer, not io.ReadAll's
		_, err = msg.ReadFrom(r)
		*bp = msg.Bytes()[:0]
		if err == nil {
			err = receiveOffReader(c, t, msg.Bytes())
		}
		c.putWriteBuffer(bp) // a large message's buffer is not kept
		switch {
		case err == nil:
		case errors.Is(err, errStaleReader), errors.Is(err, errConnGone):
			return // replaced by a reattach, or over: nothing left to do for this socket
		default:
			e.waitClosed(c)
			c.transportLost(t, true)
			return
		}
	}
}

// closeFrameReceived reports whether a read error is the client's close
// frame: the client is done. Anything else (reset, EOF; the library reports
// those as the never-sent code 1006) is a drop that a stateful connection
// survives.
func closeFrameReceived(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure
}

// waitClosed gives the writer time to deliver a queued Close message before
// the reader returns (which tears the socket down).
func (e *Endpoint) waitClosed(c *Conn) {
	select {
	case <-c.done:
	case <-time.After(e.opts.SendTimeout):
	}
}

// receiveOffReader runs c.receive on a short-lived goroutine and waits for
// it. Handling a message (JSON decoding, the hub method) needs a deep stack;
// done on the reader, which lives as long as the socket and mostly sits in
// a read, it would leave every idle connection with an 8 KiB stack instead of
// 4 KiB. Messages of one connection still run one at a time, in order.
func receiveOffReader(c *Conn, t transport, data []byte) error {
	done := make(chan error, 1)
	go func() { done <- c.receive(t, data) }()
	return <-done
}
