package signalr

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
)

// wsTransport carries a connection over a WebSocket: text frames for text
// protocols, binary frames for binary ones, one hub-message batch per frame.
type wsTransport struct {
	ws      *websocket.Conn // the library connection, not the pooled contrib wrapper
	timeout time.Duration

	// fasthttp recycles a hijacked connection as soon as the WebSocket
	// handler returns, while the Conn's writer or an end from another
	// goroutine may still be using it: they hold use for reading, and the
	// handler takes it for writing (release) before it returns.
	use  sync.RWMutex
	gone bool
}

func (*wsTransport) push()                        {}
func (*wsTransport) wake()                        {}
func (*wsTransport) keepAlive() bool              { return true }
func (*wsTransport) binary() bool                 { return true }
func (*wsTransport) idle(time.Time) time.Duration { return 0 }

var errSocketReleased = errors.New("the WebSocket handler has returned")

func (t *wsTransport) write(batch []byte, binary bool) error {
	t.use.RLock()
	defer t.use.RUnlock()
	if t.gone {
		return errSocketReleased
	}
	op := websocket.TextMessage
	if binary {
		op = websocket.BinaryMessage
	}
	if err := t.ws.SetWriteDeadline(time.Now().Add(t.timeout)); err != nil {
		return err
	}
	return t.ws.WriteMessage(op, batch)
}

// end sends a normal close frame (WriteControl is safe alongside a running
// writer) and closes the socket, which also ends the reader.
func (t *wsTransport) end() {
	t.use.RLock()
	defer t.use.RUnlock()
	if t.gone {
		return
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = t.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = t.ws.Close()
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
	t := &wsTransport{ws: ws, timeout: e.opts.SendTimeout}
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
		data, err := readAll(r, (*bp)[:0])
		*bp = data[:0]
		if err == nil {
			err = receiveOffReader(c, t, data)
		}
		e.writeBuffers.Put(bp)
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

func readAll(r io.Reader, dst []byte) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
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
