package signalr

import (
	"sync"
	"time"
)

// transportKind is the transport a connection started with. It never changes
// for the life of the connection: requests for another kind are answered with
// 400, as ASP.NET Core does ("Cannot change transports mid-connection").
type transportKind uint8

const (
	kindNone transportKind = iota // negotiated, no transport request yet
	kindWebSockets
	kindServerSentEvents
	kindLongPolling
)

// String returns the negotiate name of the transport ("" for none).
func (k transportKind) String() string {
	switch k {
	case kindWebSockets:
		return WebSockets
	case kindServerSentEvents:
		return ServerSentEvents
	case kindLongPolling:
		return LongPolling
	}
	return ""
}

// transport moves a connection's frames. Push transports (WebSockets) are
// written by the endpoint's writer pool while frames are queued (and by a
// goroutine of the connection's own while its socket is slow), so an idle
// connection has no writer goroutine. Pull transports (SSE, long polling)
// have a request goroutine that waits to be woken and takes the frames itself.
type transport interface {
	// write sends one batch of whole frames, batch[frameHeadroom:], and may
	// use the headroom in front for its own framing (push transports only).
	write(batch []byte, binary bool) error
	// tryWrite is write without waiting for the socket: if the socket does
	// not take the whole batch at once, rest is what is left of it on the
	// wire (non-nil), and finishWrite(rest, held) must follow before anything
	// else is written; held says the transport's write lock is still taken
	// for it (push transports only).
	tryWrite(batch []byte, binary bool, a *attempt) (rest []byte, held bool, err error)
	finishWrite(rest []byte, held bool) error
	// wake tells a pull transport that frames are queued. It is called with
	// the connection's lock held, so it must not block.
	wake()
	// end stops the transport once the final frames are out. It may be
	// called more than once.
	end()
	// keepAlive reports whether the transport needs hub Pings and the client
	// timeout (long polling has neither: its liveness is the polling itself).
	keepAlive() bool
	// binary reports whether the transport can carry binary frames (SSE cannot).
	binary() bool
	// idle returns how long the client has not been seen by a transport
	// whose liveness is request based (long polling); 0 for the others.
	idle(now time.Time) time.Duration
}

// pushTransport marks transports written by the writer pool.
type pushTransport interface{ push() }

// pullSignal is the wake-up and stop plumbing shared by the pull transports.
type pullSignal struct {
	signal chan struct{} // one pending wake-up: frames are queued
	stop   chan struct{} // closed by end
	once   sync.Once
}

func newPullSignal() pullSignal {
	return pullSignal{signal: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (p *pullSignal) wake() {
	select {
	case p.signal <- struct{}{}:
	default: // a wake-up is already pending; the waiter takes everything queued
	}
}

func (p *pullSignal) end() { p.once.Do(func() { close(p.stop) }) }

// The write methods are never called for pull transports: their request
// goroutine takes the frames with Conn.takeBatch.
func (*pullSignal) write([]byte, bool) error { return errPullTransport }

func (*pullSignal) tryWrite([]byte, bool, *attempt) ([]byte, bool, error) {
	return nil, false, errPullTransport
}

func (*pullSignal) finishWrite([]byte, bool) error { return errPullTransport }
