package signalr

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// lpTransport carries a connection's frames in the responses to the client's
// polls; the client sends with POST. There are no hub pings either way: the
// client coming back to poll within DisconnectTimeout is the liveness check.
type lpTransport struct {
	pullSignal

	mu       sync.Mutex
	cancel   chan struct{} // of the pending poll: closed when a newer poll takes over
	lastSeen time.Time     // when the last poll ended; zero while one is pending
}

func (*lpTransport) keepAlive() bool { return false }
func (*lpTransport) binary() bool    { return true }

func (t *lpTransport) idle(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastSeen.IsZero() {
		return 0 // a poll is pending
	}
	return now.Sub(t.lastSeen)
}

// beginPoll makes the caller the pending poll and returns the channel that
// tells it a newer poll has replaced it.
func (t *lpTransport) beginPoll() chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		close(t.cancel)
	}
	t.cancel = make(chan struct{})
	t.lastSeen = time.Time{}
	return t.cancel
}

// endPoll records the end of a poll, unless a newer one has taken over.
func (t *lpTransport) endPoll(cancel chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel == cancel {
		t.cancel = nil
		t.lastSeen = time.Now()
	}
}

// serveLongPolling answers a GET that is neither a WebSocket upgrade nor an
// event stream. The first one starts the transport and returns at once
// (that is when the connection's handshake timer starts; the JS and Java
// clients treat anything but an immediate 200 as a failed connect). Later
// ones are polls.
func (e *Endpoint) serveLongPolling(c *fiber.Ctx) error {
	if !e.transportEnabled(kindLongPolling) {
		return transportNotSupported(c, kindLongPolling)
	}
	conn, _, ended, err := e.findConn(c)
	if err != nil {
		return err
	}
	if ended {
		return noContent(c) // the client stops without an error
	}
	_, kind, tr := conn.snapshot()
	if kind == kindNone {
		t := &lpTransport{pullSignal: newPullSignal(), lastSeen: time.Now()}
		if conn.attach(t, kindLongPolling) == nil {
			c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
			c.Status(fiber.StatusOK)
			return nil
		}
		_, kind, tr = conn.snapshot() // another request started it meanwhile
	}
	t, ok := tr.(*lpTransport)
	if kind != kindLongPolling || !ok {
		if kind == kindLongPolling {
			return noContent(c) // it has ended meanwhile
		}
		return plainError(c, fiber.StatusBadRequest, msgTransportChange)
	}
	return e.poll(c, conn, t)
}

// poll holds a long poll until frames are queued (200 with all of them, whole
// frames only), PollTimeout passes (200, empty: the client polls again), a
// newer poll replaces it (204, as ASP.NET Core does) or the connection ends
// (204: the client stops without an error).
func (e *Endpoint) poll(c *fiber.Ctx, conn *Conn, t *lpTransport) error {
	cancel := t.beginPoll()
	defer t.endPoll(cancel)
	timer := time.NewTimer(e.opts.PollTimeout)
	defer timer.Stop()
	for {
		bp := e.writeBuffers.Get().(*[]byte)
		b := conn.takeBatch(t, (*bp)[:0])
		if len(b.data) > 0 {
			c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
			c.Response().SetBody(b.data) // copies: the pooled buffer goes back at once
		}
		*bp = b.data[:0]
		if cap(*bp) <= 64<<10 {
			e.writeBuffers.Put(bp)
		}
		if b.last {
			conn.finish() // after this response, which carries the Close message
		}
		switch {
		case len(b.data) > 0:
			conn.lastWrite.Store(time.Now().UnixNano())
			c.Status(fiber.StatusOK)
			return nil
		case b.last, b.closed:
			return noContent(c)
		}
		select {
		case <-t.signal:
		case <-t.stop:
		case <-cancel:
			return noContent(c)
		case <-timer.C:
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlain)
			c.Status(fiber.StatusOK)
			return nil
		}
	}
}

// noContent answers 204 without a body (fiber's SendStatus would add one).
func noContent(c *fiber.Ctx) error {
	c.Status(fiber.StatusNoContent)
	return nil
}
