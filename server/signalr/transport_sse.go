package signalr

import (
	"bufio"
	"bytes"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
)

// sseTransport carries a connection's frames to the client as a Server-Sent
// Events stream; the client sends with POST. Text frames only (EventSource
// delivers strings), so the MessagePack protocol is refused at the handshake.
type sseTransport struct{ pullSignal }

func (*sseTransport) keepAlive() bool              { return true } // hub pings flow as on WebSockets
func (*sseTransport) binary() bool                 { return false }
func (*sseTransport) idle(time.Time) time.Duration { return 0 }

// serveSSE answers GET with Accept: text/event-stream: it starts the
// connection's transport and streams its frames until the connection ends or
// the client goes away.
func (e *Endpoint) serveSSE(c *fiber.Ctx) error {
	if !e.transportEnabled(kindServerSentEvents) {
		return transportNotSupported(c, kindServerSentEvents)
	}
	conn, _, ended, err := e.findConn(c)
	if err != nil {
		return err
	}
	if ended {
		return plainError(c, fiber.StatusNotFound, msgUnknownID)
	}
	t := &sseTransport{newPullSignal()}
	if err := conn.attach(t, kindServerSentEvents); err != nil {
		if _, kind, _ := conn.snapshot(); kind != kindServerSentEvents {
			return plainError(c, fiber.StatusBadRequest, msgTransportChange)
		}
		return plainError(c, fiber.StatusConflict, msgActive)
	}
	// The headers ASP.NET Core sends; X-Accel-Buffering keeps nginx-style
	// proxies from holding events back.
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache,no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	c.Set(fiber.HeaderContentEncoding, "identity")
	c.Set("X-Accel-Buffering", "no")
	c.Status(fiber.StatusOK)
	netConn := c.Context().Conn()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) { e.streamSSE(conn, t, w, netConn) })
	return nil
}

// streamSSE writes the event stream. It runs on fasthttp's stream-writer
// goroutine once the headers are out, and flushes after every event: the
// response must never wait for a buffer to fill. A write error means the
// client went away, which ends the connection.
func (e *Endpoint) streamSSE(c *Conn, t *sseTransport, w *bufio.Writer, nc net.Conn) {
	// The deadline guards against a client that stops reading; it must not
	// outlive the stream, or a later response on this keep-alive socket fails.
	defer func() { _ = nc.SetWriteDeadline(time.Time{}) }()
	flush := func() error {
		if err := nc.SetWriteDeadline(time.Now().Add(e.opts.SendTimeout)); err != nil {
			return err
		}
		return w.Flush()
	}
	// A comment first: some browsers fire onopen (which the client waits
	// for before its handshake) only once bytes arrive.
	if _, err := w.WriteString(":\r\n"); err != nil || flush() != nil {
		c.transportLost(t, false)
		return
	}
	for {
		bp := e.writeBuffers.Get().(*[]byte)
		b := c.takeBatch(t, (*bp)[:0])
		var err error
		if len(b.data) > 0 {
			if err = writeSSEEvent(w, b.data); err == nil {
				err = flush()
			}
		}
		*bp = b.data[:0]
		if cap(*bp) <= 64<<10 { // do not pool what one burst grew
			e.writeBuffers.Put(bp)
		}
		switch {
		case err != nil:
			e.log.Debug("event stream write failed", "conn", c.id, "err", err)
			c.transportLost(t, false)
			return
		case b.last:
			c.finish()
			return
		case b.closed:
			return
		case len(b.data) > 0:
			c.lastWrite.Store(time.Now().UnixNano())
		}
		select {
		case <-t.signal:
		case <-t.stop:
			return
		}
	}
}

// writeSSEEvent writes payload as one unnamed event, the way ASP.NET Core
// formats it: each line of the payload (split on LF, a trailing CR dropped)
// as "data: <line>\r\n", then an empty line. EventSource joins the lines with
// LF again; JSON frames have no raw newlines, so they arrive unchanged.
func writeSSEEvent(w *bufio.Writer, payload []byte) error {
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		_, _ = w.WriteString("data: ")
		_, _ = w.Write(line)
		_, _ = w.WriteString("\r\n")
	}
	_, err := w.WriteString("\r\n") // bufio.Writer keeps the first error; this reports it
	return err
}
