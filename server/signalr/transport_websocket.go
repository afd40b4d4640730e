package signalr

import (
	"io"
	"time"

	"github.com/fasthttp/websocket"
)

// wsTransport carries a connection over a WebSocket: text frames for text
// protocols, binary frames for binary ones, one hub-message batch per frame.
type wsTransport struct {
	ws      *websocket.Conn // the library connection, not the pooled contrib wrapper
	timeout time.Duration
}

func (*wsTransport) name() string    { return WebSockets }
func (*wsTransport) push()           {}
func (*wsTransport) wake()           {}
func (*wsTransport) keepAlive() bool { return true }
func (*wsTransport) binary() bool    { return true }

func (t *wsTransport) write(batch []byte, binary bool) error {
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
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = t.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = t.ws.Close()
}

// serveWebSocket runs a WebSocket for c until it ends. It is the reader: each
// WebSocket message is fed to the connection as bytes, whatever its opcode
// (the Java client sends JSON in binary frames).
func (e *Endpoint) serveWebSocket(ws *websocket.Conn, c *Conn) {
	readLimit := int64(e.opts.MaxMessageSize) * 4
	ws.SetReadLimit(readLimit)
	if err := c.attach(&wsTransport{ws: ws, timeout: e.opts.SendTimeout}); err != nil {
		_ = ws.Close()
		return
	}
	defer c.Abort()
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			if err == websocket.ErrReadLimit {
				e.metrics.Rejected("message_too_large")
				c.Close("Connection closed with an error. The message exceeds the maximum message size.", true)
				e.waitClosed(c)
			}
			return
		}
		bp := e.writeBuffers.Get().(*[]byte)
		data, err := readAll(r, (*bp)[:0])
		*bp = data[:0]
		if err == nil {
			err = c.receive(data)
		}
		e.writeBuffers.Put(bp)
		if err != nil {
			e.waitClosed(c)
			return
		}
	}
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
