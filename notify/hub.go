package notify

import (
	"context"
	"fmt"
	"sync"
	"time"

	"notifyhub/payloads"
	"notifyhub/subscriptions"
)

// Encoder encodes a notification as one frame of a wire protocol (an OnEvent
// invocation). Subscribers that return the same Encoder share one encoding.
type Encoder interface {
	EncodeNotification(n *payloads.Notification) ([]byte, error)
}

// Subscriber is one client connection as the hub core sees it.
type Subscriber interface {
	// Tenant is the only tenant whose notifications the subscriber receives.
	Tenant() string
	// Subscriptions is the subscriber's set, guarded by the hub's index.
	Subscriptions() *subscriptions.Set
	// Encoder encodes for the subscriber's protocol.
	Encoder() Encoder
	// Deliver queues a shared, immutable frame without blocking; false means
	// it was not queued (slow or closed connection).
	Deliver(frame []byte) bool
}

// Metrics receives the core's counts, e.g. for Prometheus.
type Metrics interface {
	Published(n int)
	Delivered(n int)
	Expired()
	Dropped(n int)
	EncodeFailed()
}

type noMetrics struct{}

func (noMetrics) Published(int) {}
func (noMetrics) Delivered(int) {}
func (noMetrics) Expired()      {}
func (noMetrics) Dropped(int)   {}
func (noMetrics) EncodeFailed() {}

// Options configure a Hub.
type Options struct {
	// Backplane carries publishes to every node. Default: NewMemoryBackplane().
	Backplane Backplane
	// MaxSubscriptions bounds the entries one connection may hold; 0: unlimited.
	MaxSubscriptions int
	// Metrics receives counts. Default: none.
	Metrics Metrics
	// Now is the clock used for expiry. Default: time.Now.
	Now func() time.Time
}

// Hub matches and delivers notifications.
type Hub struct {
	index     *subscriptions.Index[Subscriber]
	backplane Backplane
	maxSubs   int
	metrics   Metrics
	now       func() time.Time
	scratch   sync.Pool      // *deliverScratch reused by Deliver
	tenants   *tenantTracker // set when the backplane is a TenantRouter
}

// New returns a hub; call Run to start receiving from the backplane.
func New(opts Options) *Hub {
	h := &Hub{
		index:     subscriptions.NewIndex[Subscriber](),
		backplane: opts.Backplane,
		maxSubs:   opts.MaxSubscriptions,
		metrics:   opts.Metrics,
		now:       opts.Now,
	}
	if h.backplane == nil {
		h.backplane = NewMemoryBackplane()
	}
	if r, ok := h.backplane.(TenantRouter); ok {
		h.tenants = newTenantTracker(r)
	}
	if h.metrics == nil {
		h.metrics = noMetrics{}
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.scratch.New = func() any {
		return &deliverScratch{recipients: make([]Subscriber, 0, 256), frames: make([]encoded, 0, 8)}
	}
	return h
}

// Start makes the hub take publishes and deliver what the backplane
// receives, from when it returns until ctx ends; stopped is closed once the
// backplane has stopped.
func (h *Hub) Start(ctx context.Context) (stopped <-chan struct{}, err error) {
	stopped, err = h.backplane.Start(ctx, h.Deliver)
	if err != nil {
		return nil, fmt.Errorf("start the backplane: %w", err)
	}
	return stopped, nil
}

// Ready reports whether publishes reach every node (see Backplane.Ready).
func (h *Hub) Ready() error { return h.backplane.Ready() }

// Publish hands validated notifications of tenant to the backplane. When it
// returns nil, every matching subscriber connected now has them queued (in
// memory) or every node has accepted them (Redis).
func (h *Hub) Publish(ctx context.Context, tenant string, ns []payloads.Notification) error {
	if err := h.backplane.Publish(ctx, tenant, ns); err != nil {
		return fmt.Errorf("publish %d notifications for tenant %q: %w", len(ns), tenant, err)
	}
	h.metrics.Published(len(ns))
	return nil
}

// Subscribe adds f to s's subscriptions. With a backplane that routes by
// tenant, it returns once publishes of every node reach them.
func (h *Hub) Subscribe(s Subscriber, f payloads.Filter) (n int, err error) {
	if h.tenants == nil {
		return h.index.Subscribe(s.Tenant(), s, s.Subscriptions(), f, h.maxSubs)
	}
	h.tenants.wait(h.tenants.update(s, func() {
		n, err = h.index.Subscribe(s.Tenant(), s, s.Subscriptions(), f, h.maxSubs)
	}))
	return n, err
}

// Unsubscribe removes exactly f's entries from s's subscriptions.
func (h *Hub) Unsubscribe(s Subscriber, f payloads.Filter) (n int) {
	if h.tenants == nil {
		return h.index.Unsubscribe(s.Tenant(), s, s.Subscriptions(), f)
	}
	h.tenants.update(s, func() { n = h.index.Unsubscribe(s.Tenant(), s, s.Subscriptions(), f) })
	return n
}

// Disconnect drops all of s's subscriptions.
func (h *Hub) Disconnect(s Subscriber) {
	if h.tenants == nil {
		h.index.RemoveAll(s.Tenant(), s, s.Subscriptions())
		return
	}
	h.tenants.update(s, func() { h.index.RemoveAll(s.Tenant(), s, s.Subscriptions()) })
}

// deliverScratch is what one Deliver call reuses between its notifications
// and, through the pool, between calls: the matched recipients and the frames
// encoded for the current notification, one per distinct encoder.
type deliverScratch struct {
	recipients []Subscriber
	// frames grows to the number of distinct encoders that one notification
	// meets (two protocols times the client methods in use: a handful), so
	// after the first deliveries it no longer allocates.
	frames []encoded
}

type encoded struct {
	enc   Encoder
	frame []byte // nil when encoding failed
}

// Deliver hands notifications of tenant to this node's matching subscribers,
// in order. Each notification is encoded at most once per distinct Encoder,
// however many there are, and only for encoders that some recipient uses.
// Expired notifications are skipped. Backplanes call it; it is exported for
// them.
func (h *Hub) Deliver(tenant string, ns []payloads.Notification) {
	now := h.now()
	sc := h.scratch.Get().(*deliverScratch)
	defer h.scratch.Put(sc)
	for i := range ns {
		n := &ns[i]
		if n.Expired(now) {
			h.metrics.Expired()
			continue
		}
		recipients := h.index.Match(tenant, n.Event, n.Routing, sc.recipients[:0])
		frames := sc.frames[:0] // a local: the lookup below stays in registers
		delivered, dropped := 0, 0
		for _, s := range recipients {
			// The encoders are few, so a linear scan beats a map.
			enc := s.Encoder()
			j := 0
			for j < len(frames) && frames[j].enc != enc {
				j++
			}
			if j == len(frames) {
				frames = append(frames, encoded{enc, h.encode(n, enc)})
			}
			if frame := frames[j].frame; frame != nil && s.Deliver(frame) {
				delivered++
			} else {
				dropped++
			}
		}
		// Do not keep subscribers and frames alive through the pool.
		clear(recipients)
		sc.recipients = recipients[:0]
		clear(frames)
		sc.frames = frames[:0]
		h.metrics.Delivered(delivered)
		if dropped > 0 {
			h.metrics.Dropped(dropped)
		}
	}
}

// encode returns n encoded by enc, nil if that fails.
func (h *Hub) encode(n *payloads.Notification, enc Encoder) []byte {
	if enc == nil {
		return nil // a subscriber not ready for delivery: counted as dropped
	}
	frame, err := enc.EncodeNotification(n)
	if err != nil {
		h.metrics.EncodeFailed()
		return nil
	}
	return frame
}

// Stats describe the index for metrics.
func (h *Hub) Stats() (tenants, connections, entries int) {
	return h.index.Tenants(), h.index.Connections(), h.index.Entries()
}
