package signalr

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Transport names as negotiate lists them.
const (
	WebSockets       = "WebSockets"
	ServerSentEvents = "ServerSentEvents"
	LongPolling      = "LongPolling"
)

// Options configure an Endpoint. Zero fields take the defaults written beside
// them, which are ASP.NET Core SignalR's.
type Options struct {
	// Handler receives the hub invocations. Required.
	Handler Handler
	// Authenticate checks a negotiate or connect request and returns what the
	// Handler later finds in Conn.UserData. An error that has a
	// StatusCode() int method is answered with that status, any other with 401;
	// one with a RejectReason() string method is counted in Metrics.Rejected
	// under that reason (else 401 and 403 under their own).
	// Nil: every request is anonymous. It also runs for every later request
	// of a connection (SSE and long-polling sends, polls, DELETE, a stateful
	// reattach): those carry the connection's token in the id query
	// parameter, and what they return is only passed to SameUser, so checks
	// that count new connections belong to requests without an id.
	Authenticate func(c *fiber.Ctx) (any, error)
	// SameUser reports whether a connect request's user (from Authenticate) may
	// take over the connection negotiated by another request's user. Nil: any.
	SameUser func(negotiated, connecting any) bool
	// Protocols the handshake accepts. Default: JSON and MessagePack.
	Protocols []Protocol
	// Transports offered by negotiate and accepted on the connection URL, in
	// order of preference (clients try them in this order): WebSockets,
	// ServerSentEvents, LongPolling. Default: all three.
	Transports []string
	// StatefulReconnect lets clients that ask for it in negotiate
	// (withStatefulReconnect) keep their connection across a dropped
	// WebSocket: see reconnect.go. Off by default, as in ASP.NET Core.
	StatefulReconnect bool
	// StatefulReconnectBufferSize bounds the bytes of sent frames a stateful
	// connection keeps until the client acknowledges them; a client that lets
	// it overflow is closed (allowReconnect). Default 100 000, as ASP.NET Core.
	StatefulReconnectBufferSize int

	MaxMessageSize    int           // largest incoming hub message; default 32 KiB
	HandshakeTimeout  time.Duration // transport start → handshake request; default 15 s
	KeepAliveInterval time.Duration // server Ping cadence; default 15 s
	ClientTimeout     time.Duration // silence after the client's first Ping that closes it; default 30 s
	DisconnectTimeout time.Duration // a connection without a transport request (not started, between polls, WebSocket dropped with stateful reconnect) ends after it; default 15 s
	SendTimeout       time.Duration // one transport write; default 10 s
	PollTimeout       time.Duration // longest long poll; default 90 s
	QueueLength       int           // outbound frames queued per connection before it counts as slow; default 1024
	QueueBytes        int           // outbound bytes queued per connection before it counts as slow; default 4 MiB
	ReadBufferSize    int           // WebSocket read buffer, held by every connection; default 512 B (hub messages are small; larger ones take more reads)
	WriteBufferSize   int           // first size of the buffers batches are framed and written from (pooled, not per connection); default 4 KiB

	Logger  *slog.Logger // default slog.Default()
	Metrics Metrics      // default: none
}

// Metrics receives an endpoint's events, e.g. for Prometheus.
type Metrics interface {
	Connected(transport, protocol string)
	Disconnected(transport, protocol string)
	SlowConsumer()
	Rejected(reason string)
}

type noMetrics struct{}

func (noMetrics) Connected(string, string)    {}
func (noMetrics) Disconnected(string, string) {}
func (noMetrics) SlowConsumer()               {}
func (noMetrics) Rejected(string)             {}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	if len(o.Protocols) == 0 {
		o.Protocols = []Protocol{JSONProtocol{}, MessagePackProtocol{}}
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{WebSockets, ServerSentEvents, LongPolling}
	}
	defInt(&o.StatefulReconnectBufferSize, 100_000)
	defInt(&o.MaxMessageSize, 32<<10)
	def(&o.HandshakeTimeout, 15*time.Second)
	def(&o.KeepAliveInterval, 15*time.Second)
	def(&o.ClientTimeout, 30*time.Second)
	def(&o.DisconnectTimeout, 15*time.Second)
	def(&o.SendTimeout, 10*time.Second)
	def(&o.PollTimeout, 90*time.Second)
	defInt(&o.QueueLength, 1024)
	defInt(&o.QueueBytes, 4<<20)
	defInt(&o.ReadBufferSize, 512)
	defInt(&o.WriteBufferSize, 4<<10)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
}

// Endpoint serves one hub: negotiate, the transports, and the connections'
// timers. Create it with NewEndpoint, mount it with Mount, and run its timer
// with Run.
type Endpoint struct {
	opts    Options
	handler Handler
	log     *slog.Logger
	metrics Metrics
	tick    time.Duration // heartbeat period: one second, like ASP.NET Core's; tests shorten it

	pings        map[string][]byte // protocol name → encoded Ping
	writeBuffers sync.Pool         // batches being written or formatted by transports
	writers      writerPool        // the WebSocket connections' writers
	queuedFrames atomic.Int64      // frames in all connections' outbound queues (a metric)

	mu       sync.RWMutex
	conns    map[string]*Conn     // live connections by connection token
	ended    map[string]time.Time // long-polling connections that ended recently, by token: their next poll gets 204
	draining bool
}

// NewEndpoint returns an endpoint with opts (defaults filled in).
func NewEndpoint(opts Options) (*Endpoint, error) {
	if opts.Handler == nil {
		return nil, errors.New("signalr: Options.Handler is required")
	}
	opts.setDefaults()
	for _, t := range opts.Transports {
		if t != WebSockets && t != ServerSentEvents && t != LongPolling {
			return nil, fmt.Errorf("signalr: unknown transport %q (want %s, %s or %s)", t, WebSockets, ServerSentEvents, LongPolling)
		}
	}
	e := &Endpoint{
		opts:    opts,
		handler: opts.Handler,
		log:     opts.Logger,
		metrics: opts.Metrics,
		tick:    time.Second,
		pings:   make(map[string][]byte, len(opts.Protocols)),
		conns:   make(map[string]*Conn),
		ended:   make(map[string]time.Time),
	}
	e.writeBuffers.New = func() any { b := make([]byte, 0, opts.WriteBufferSize); return &b }
	// Writers never block on a socket, so a few per CPU keep every CPU busy.
	e.writers.max = 2 * runtime.GOMAXPROCS(0)
	for _, p := range opts.Protocols {
		ping, err := p.AppendMessage(nil, &Message{Type: TypePing})
		if err != nil {
			return nil, fmt.Errorf("signalr: encode a %s ping: %w", p.Name(), err)
		}
		e.pings[p.Name()] = ping
	}
	return e, nil
}

func (e *Endpoint) protocol(name string) Protocol {
	for _, p := range e.opts.Protocols {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

func (e *Endpoint) transportEnabled(k transportKind) bool {
	for _, t := range e.opts.Transports {
		if t == k.String() {
			return true
		}
	}
	return false
}

// newConn registers a connection. Version 0 clients use the connection id
// as the token; stateful says negotiate agreed to stateful reconnect.
func (e *Endpoint) newConn(userData any, version int, stateful bool) (*Conn, error) {
	c := &Conn{
		ep:       e,
		id:       randomID(),
		UserData: userData,
		stateful: stateful,
		created:  time.Now().UnixNano(),
		done:     make(chan struct{}),
	}
	c.token = c.id
	if version > 0 {
		c.token = randomID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining {
		return nil, errDraining
	}
	e.conns[c.token] = c
	return c, nil
}

var errDraining = &httpError{status: http.StatusServiceUnavailable, msg: "the server is shutting down"}

// lookup returns the live connection of token, or reports whether token is
// a long-polling connection that ended recently.
func (e *Endpoint) lookup(token string) (c *Conn, ended bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if c = e.conns[token]; c != nil {
		return c, false
	}
	_, ended = e.ended[token]
	return nil, ended
}

// remove unregisters an ended connection. A long-polling client learns that
// its connection is over from its next poll (204), so the token is
// remembered for DisconnectTimeout: until then polls get 204, POSTs 404 and
// DELETE 202.
func (e *Endpoint) remove(c *Conn, kind transportKind) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns[c.token] != c {
		return
	}
	delete(e.conns, c.token)
	if kind == kindLongPolling {
		e.ended[c.token] = time.Now()
	}
}

// Len returns the number of live connections.
func (e *Endpoint) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.conns)
}

// Run drives the connections' timers once a second until ctx ends.
func (e *Endpoint) Run(ctx context.Context) {
	t := time.NewTicker(e.tick)
	defer t.Stop()
	var batch []*Conn
	ping := func(p Protocol) []byte { return e.pings[p.Name()] }
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			batch = e.snapshot(batch[:0])
			for i, c := range batch {
				if c.heartbeat(now, ping) {
					c.finish()
				}
				batch[i] = nil
			}
			e.expireEnded(now)
		}
	}
}

// expireEnded forgets ended long-polling connections after DisconnectTimeout:
// a client that has not polled by then is gone too.
func (e *Endpoint) expireEnded(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for token, at := range e.ended {
		if now.Sub(at) > e.opts.DisconnectTimeout {
			delete(e.ended, token)
		}
	}
}

func (e *Endpoint) snapshot(dst []*Conn) []*Conn {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, c := range e.conns {
		dst = append(dst, c)
	}
	return dst
}

// Shutdown stops accepting connections, sends every client a Close message
// that allows reconnecting (after what is already queued for it) and waits
// until all connections are gone or ctx ends.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	for _, c := range e.snapshot(nil) {
		c.Close("", true)
		if _, _, tr := c.snapshot(); tr == nil {
			c.finish() // not started, or a stateful connection waiting to reattach: nothing to deliver
		}
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for e.Len() > 0 {
		select {
		case <-ctx.Done():
			for _, c := range e.snapshot(nil) {
				c.Abort()
			}
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// randomID returns 16 random bytes as URL-safe base64 without padding, like
// ASP.NET Core: the JS client puts the token into URLs without encoding it.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// httpError is an error answered with a status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string   { return e.msg }
func (e *httpError) StatusCode() int { return e.status }

// statusOf returns the HTTP status for an Authenticate error.
func statusOf(err error) int {
	var s interface{ StatusCode() int }
	if errors.As(err, &s) {
		return s.StatusCode()
	}
	return http.StatusUnauthorized
}

// QueuedFrames returns how many frames wait in the outbound queues of all
// the endpoint's connections: the backlog between fan-out and the sockets.
func (e *Endpoint) QueuedFrames() int64 { return e.queuedFrames.Load() }
