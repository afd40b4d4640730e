package notify

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"notifyhub/payloads"
)

// ErrCrossNode is wrapped by the error of a publish that Redis did not
// accept: the other nodes may not have received it. The error says whether
// this node's own subscribers were served.
var ErrCrossNode = errors.New("cross-node delivery failed")

// BackplaneMetrics receives a networked backplane's state and counts.
type BackplaneMetrics interface {
	// BackplaneUp reports whether publishes reach every node.
	BackplaneUp(up bool)
	// BackplaneReconnect counts attempts to connect again after a failure.
	BackplaneReconnect()
	// BackplaneMessage counts backplane messages by outcome: "published",
	// "publish_failed", "received", "decode_failed".
	BackplaneMessage(outcome string)
}

type noBackplaneMetrics struct{}

func (noBackplaneMetrics) BackplaneUp(bool)        {}
func (noBackplaneMetrics) BackplaneReconnect()     {}
func (noBackplaneMetrics) BackplaneMessage(string) {}

// RedisOptions configure a RedisBackplane. Only URL is required.
type RedisOptions struct {
	// URL is a redis:// or rediss:// URL, e.g. redis://:password@host:6379/0.
	URL string
	// Prefix starts every channel name; the tenant follows it. Deployments
	// that share one Redis need different prefixes. Default "notifyhub:".
	Prefix string
	// PublishTimeout bounds how long a publish waits for Redis. Default 2s.
	PublishTimeout time.Duration
	// HealthInterval is how often an idle subscriber connection is pinged;
	// after three intervals without any reply it counts as lost. Default 1s.
	HealthInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from one to the other (with jitter).
	// Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics defaults to none.
	Metrics BackplaneMetrics
}

// RedisBackplane carries publishes between the nodes of a deployment over
// Redis pub/sub, one channel per tenant (Prefix + tenant).
//
// A node subscribes to a tenant's channel while it has a subscribed
// connection of that tenant (it is a TenantRouter), so a node receives a
// tenant's traffic once, and only if it has someone to deliver it to. Each
// publish request is one PUBLISH of one message; every node, the publishing
// one included, delivers what it receives from its subscriber connection, so
// each connection gets a notification once and in the order Redis accepted
// the publishes.
//
// Redis pub/sub delivers at most once: a node that is disconnected from Redis
// misses what is published meanwhile. While Redis cannot be reached, Ready
// fails, publishes are delivered to this node's own subscribers and Publish
// returns an error wrapping ErrCrossNode; the subscriber connection is rebuilt
// with backoff and resubscribes every tenant the node needs. While only the
// subscriber connection is down (it reconnects after a Redis restart with
// backoff, the publishing connections at once), a publish that Redis accepts
// is delivered to this node's subscribers directly. So is a publish that
// Redis accepted while the subscriber connection was up when that connection
// dies before bringing it back: when a subscriber connection ends, the node
// delivers, in order, its own publishes that it left to that connection and
// did not receive on it.
type RedisBackplane struct {
	client  *redis.Client
	opts    RedisOptions
	log     *slog.Logger
	metrics BackplaneMetrics
	node    uint64 // tells this node's messages from others'
	seq     atomic.Uint64
	// upSession is the id of the session whose subscriptions are confirmed,
	// 0 while there is none: a publish compares it before and after, to know
	// that the subscriber connection that will bring it back stayed the same.
	upSession atomic.Uint64
	closed    chan struct{} // already closed: "do not wait"
	// deliver is Start's deliver function while the backplane runs.
	deliver atomic.Pointer[func(string, []payloads.Notification)]

	// mu guards the sessions and what is queued for their writers. No one
	// holds it while waiting for Redis: WatchTenant and UnwatchTenant run
	// under the hub's tenant locks, from client invocations and from
	// connections ending on the endpoint's heartbeat path. Publish does not
	// take it at all.
	mu      sync.Mutex
	running bool
	sess    *redisSession // nil while disconnected
	downErr error         // why the backplane is not up
	lastID  uint64        // of the latest session

	tenantsMu sync.RWMutex              // taken after mu and ownMu
	tenants   map[string]*tenantChannel // watched tenants

	// deliverMu orders this node's deliveries of its own publishes: by the
	// receiver, by Publish, and of those stranded by a lost connection.
	deliverMu sync.Mutex
	ownMu     sync.Mutex             // taken after deliverMu
	own       map[uint64]*ownPublish // this node's publishes of watched tenants, by seq
	stranded  int                    // entries of own that are done and not received
	lastPrune time.Time

	// Read and written by the receiving goroutine only.
	decodeLogged  time.Time
	decodeDropped int
}

// redisSession is one subscriber connection and what was sent on it.
//
// Only its writer goroutine writes on the connection: go-redis may dial in
// any PubSub call (after a failed read its reconnection holds the PubSub's
// lock for a dial and a handshake), so a write can wait for dial and write
// timeouts while Redis is unreachable. The others queue under b.mu.
type redisSession struct {
	id       uint64 // from 1
	ps       *redis.PubSub
	lastRead atomic.Int64       // unix nanoseconds of the last reply of any kind
	cancel   context.CancelFunc // of the writer's context: cuts a dial short

	// Guarded by b.mu.
	queue    []subCommand  // to send, in order
	pingTo   uint64        // with the queue: a barrier ping with this id, 0: none
	health   bool          // with the queue: a health ping
	wake     chan struct{} // capacity 1: something is queued
	barriers []barrier     // pings queued or sent and not yet answered, oldest first
	nextPing uint64

	// Set once by endLocked.
	ended bool
	wasUp bool  // it had been up
	err   error // why it ended
}

// subCommand is a SUBSCRIBE or UNSUBSCRIBE of one channel, queued for a
// session's writer.
type subCommand struct {
	channel     string
	unsubscribe bool
}

// tenantChannel is one watch of a tenant: a tenant unwatched and watched
// again gets a new one.
type tenantChannel struct {
	// ready is WatchTenant's channel: once it is closed, publishes made from
	// then on reach the current subscriber connection (or the node is down).
	ready <-chan struct{}
}

// barrier is a PING sent after SUBSCRIBE commands: Redis answers commands of
// a connection in order, so its reply proves that they took effect. The
// writer sends one ping for all the barriers queued with one batch (the
// latest id): its reply answers them all.
type barrier struct {
	id    uint64
	done  chan struct{}
	setUp bool // the first of a session: once answered, the node is up
}

// ownPublish is a publish of this node (of a tenant it watches) that its
// subscriber connection may bring back. It lets the receiver deliver the
// notifications it already has without decoding them, and it keeps a publish
// exactly-once when the node has to deliver it itself (the PUBLISH failed,
// the subscriber connection was down, or it died before bringing the publish
// back): whichever comes first delivers it, the other one does not.
type ownPublish struct {
	tenant string
	ns     []payloads.Notification
	at     time.Time
	watch  *tenantChannel // the tenant's watch when it was published
	// confirmed: watch was confirmed when it was published, so the PUBLISH
	// reached Redis after the SUBSCRIBE, and the subscriber connection that
	// was up then brings it back unless it dies.
	confirmed bool
	session   uint64 // with done: the session the delivery was left to
	received  bool   // the receiver delivered it
	done      bool   // Publish returned, leaving the delivery to the receiver
	local     bool   // delivered here without the receiver: drop it if it comes
}

const (
	barrierPrefix = "b"
	healthPing    = "hc"
	connectPing   = "connect"
	// ownTTL is how long a node remembers its own publishes for the
	// receiver. A copy comes back within milliseconds or never (its
	// subscriber connection died); Publish settles each entry within
	// PublishTimeout. One that comes back later is decoded like any other.
	ownTTL = 10 * time.Second
)

// NewRedisBackplane returns a backplane for the Redis at opts.URL. It does
// not connect: Run does, and keeps reconnecting until its context ends.
func NewRedisBackplane(opts RedisOptions) (*RedisBackplane, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, password included
		}
		return nil, fmt.Errorf("invalid redis URL: %w", err)
	}
	if opts.Prefix == "" {
		opts.Prefix = "notifyhub:"
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 2 * time.Second
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	// A retried PUBLISH whose first attempt reached Redis would be delivered
	// twice, so commands are never retried; the caller decides.
	ro.MaxRetries = -1
	// RESP2: pub/sub messages are ordinary replies on the subscriber
	// connection, which is all this needs, with any Redis version.
	ro.Protocol = 2
	ro.DisableIdentity = true
	// Let the publish timeout and the publisher's request context cut a
	// publish short, not only the socket timeouts.
	ro.ContextTimeoutEnabled = true
	if ro.DialTimeout == 0 {
		ro.DialTimeout = opts.PublishTimeout
	}
	if ro.ReadTimeout == 0 {
		ro.ReadTimeout = opts.PublishTimeout
	}
	if ro.WriteTimeout == 0 {
		ro.WriteTimeout = opts.PublishTimeout
	}
	var id [8]byte
	_, _ = crand.Read(id[:])
	b := &RedisBackplane{
		client:  redis.NewClient(ro),
		opts:    opts,
		log:     opts.Logger,
		metrics: opts.Metrics,
		node:    binary.BigEndian.Uint64(id[:]),
		closed:  make(chan struct{}),
		tenants: make(map[string]*tenantChannel),
		downErr: errors.New("not connected yet"),
		own:     make(map[uint64]*ownPublish),
	}
	close(b.closed)
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("backplane", "redis", "redis", ro.Addr)
	if b.metrics == nil {
		b.metrics = noBackplaneMetrics{}
	}
	b.metrics.BackplaneUp(false)
	return b, nil
}

func (b *RedisBackplane) channel(tenant string) string { return b.opts.Prefix + tenant }

// watching returns the watch of tenant, nil when this node does not receive
// its publishes.
func (b *RedisBackplane) watching(tenant string) *tenantChannel {
	b.tenantsMu.RLock()
	defer b.tenantsMu.RUnlock()
	return b.tenants[tenant]
}

// Ready implements Backplane: nil while the subscriber connection is up and
// subscribed to every watched tenant.
func (b *RedisBackplane) Ready() error {
	if b.upSession.Load() != 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Errorf("redis backplane: cross-node delivery is down: %w", b.downErr)
}

// Publish implements Backplane with one PUBLISH of the whole batch. When
// Redis does not take it, the batch is delivered to this node's subscribers
// and the error wraps ErrCrossNode.
func (b *RedisBackplane) Publish(ctx context.Context, tenant string, ns []payloads.Notification) error {
	dp := b.deliver.Load()
	if dp == nil {
		return ErrNotRunning
	}
	deliver := *dp
	watch := b.watching(tenant)
	watched := watch != nil
	h := wireHeader{node: b.node, seq: b.seq.Add(1)}
	msg := encodeMessage(h, ns)
	up := b.upSession.Load()
	if watched {
		b.remember(h.seq, tenant, ns, watch)
	}
	pctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	err := b.client.Publish(pctx, b.channel(tenant), msg).Err()
	cancel()
	if err == nil {
		b.metrics.BackplaneMessage("published")
		if !watched {
			return nil
		}
		if up != 0 && b.leaveToReceiver(h.seq, up) {
			return nil
		}
		// The subscriber connection was down, or was replaced meanwhile: it
		// may never bring this back, so deliver here unless it already did.
		b.deliverOwn(h.seq, tenant, ns, deliver)
		return nil
	}
	b.metrics.BackplaneMessage("publish_failed")
	err = fmt.Errorf("publish to redis channel %q: %w", b.channel(tenant), err)
	if !watched {
		return fmt.Errorf("%w (this node has no subscribers of the tenant): %w", ErrCrossNode, err)
	}
	if !b.deliverOwn(h.seq, tenant, ns, deliver) {
		// The subscriber connection brought it back, so Redis did take it
		// and every subscribed node got it: only the reply was lost.
		b.metrics.BackplaneMessage("published")
		return nil
	}
	return fmt.Errorf("%w; delivered to this node's subscribers only: %w", ErrCrossNode, err)
}

// remember records a publish of a watched tenant for the receiver.
func (b *RedisBackplane) remember(seq uint64, tenant string, ns []payloads.Notification, watch *tenantChannel) {
	now := time.Now()
	o := &ownPublish{tenant: tenant, ns: ns, at: now, watch: watch}
	select {
	case <-watch.ready:
		o.confirmed = true
	default:
	}
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	b.own[seq] = o
	if now.Sub(b.lastPrune) > ownTTL/2 {
		// Entries normally go when the receiver sees them; these are the
		// publishes that never came back (a tenant unwatched meanwhile, a
		// connection lost) and the marks of those delivered here.
		b.lastPrune = now
		for s, o := range b.own {
			if now.Sub(o.at) > ownTTL {
				if o.done && !o.received && !o.local {
					b.stranded--
				}
				delete(b.own, s)
			}
		}
	}
}

// leaveToReceiver leaves the delivery of publish seq, which Redis took, to
// the receiver of session up, if that session is still the one that is up.
// It reports false when it is not: the caller must deliver the publish. The
// check and the mark are one step under ownMu, so that a session that ends
// at any point either sees the mark when it hands over its stranded
// publishes (see deliverStranded) or makes this return false.
func (b *RedisBackplane) leaveToReceiver(seq, up uint64) bool {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	if b.upSession.Load() != up {
		return false
	}
	if o := b.own[seq]; o != nil {
		if o.received {
			delete(b.own, seq)
		} else {
			o.done, o.session = true, up
			b.stranded++
		}
	}
	return true
}

// deliverOwn delivers this node's publish seq here, unless the receiver
// already did, after any publishes stranded by a lost subscriber connection
// (which are older: each publisher's order holds). It reports whether it
// delivered seq.
func (b *RedisBackplane) deliverOwn(seq uint64, tenant string, ns []payloads.Notification, deliver func(string, []payloads.Notification)) bool {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	b.deliverStrandedLocked(deliver)
	if !b.claim(seq) {
		return false
	}
	deliver(tenant, ns)
	return true
}

// deliverStranded delivers, oldest first, this node's publishes that were
// left to a subscriber connection that has ended without bringing them
// back. Redis took them, Publish answered so, and the other nodes got them;
// without this, this node's subscribers would not. The run loop calls it
// when a session ends; Publish calls it before delivering one itself.
func (b *RedisBackplane) deliverStranded(deliver func(string, []payloads.Notification)) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	b.deliverStrandedLocked(deliver)
}

type strandedPublish struct {
	seq    uint64
	tenant string
	ns     []payloads.Notification
}

// deliverStrandedLocked is deliverStranded with deliverMu held.
func (b *RedisBackplane) deliverStrandedLocked(deliver func(string, []payloads.Notification)) {
	b.ownMu.Lock()
	if b.stranded == 0 {
		b.ownMu.Unlock()
		return
	}
	var todo []strandedPublish
	up := b.upSession.Load() // a session id is up once, so another one has ended
	b.tenantsMu.RLock()
	for seq, o := range b.own {
		if !o.done || o.received || o.local || o.session == up {
			continue
		}
		o.local = true
		b.stranded--
		// Only while the tenant has stayed watched since, and only if the
		// PUBLISH followed the SUBSCRIBE: otherwise the connection would
		// not have brought it back either, and the subscribers it would go
		// to now came later.
		if o.confirmed && b.tenants[o.tenant] == o.watch {
			todo = append(todo, strandedPublish{seq, o.tenant, o.ns})
		}
		o.ns = nil
	}
	b.tenantsMu.RUnlock()
	b.ownMu.Unlock()
	if len(todo) == 0 {
		return
	}
	slices.SortFunc(todo, func(x, y strandedPublish) int { return cmp.Compare(x.seq, y.seq) })
	b.log.Info("redis backplane: delivering this node's publishes that the lost connection did not bring back", "publishes", len(todo))
	for _, p := range todo {
		deliver(p.tenant, p.ns)
	}
}

// claim takes the delivery of publish seq away from the receiver and reports
// whether the caller must deliver it: false when the receiver already did.
func (b *RedisBackplane) claim(seq uint64) bool {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	o := b.own[seq]
	switch {
	case o == nil: // pruned
		return true
	case o.received:
		delete(b.own, seq)
		return false
	}
	o.local, o.ns = true, nil
	return true
}

// takeOwn is the receiver's side: it returns the notifications of this
// node's publish seq and whether the message is handled by that (delivered
// from ns, or dropped when ns is nil). ok false means decode and deliver it.
func (b *RedisBackplane) takeOwn(seq uint64) (ns []payloads.Notification, ok bool) {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	o := b.own[seq]
	switch {
	case o == nil:
		return nil, false
	case o.local:
		delete(b.own, seq)
		return nil, true
	}
	o.received = true
	if o.done {
		b.stranded--
		delete(b.own, seq)
	}
	return o.ns, true
}

// WatchTenant implements TenantRouter: it queues the subscription to the
// tenant's channel and returns a channel closed when Redis confirmed it, or
// when the session ends first. While disconnected it only records the
// tenant, which the next connection subscribes to. It never waits for Redis.
func (b *RedisBackplane) WatchTenant(tenant string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ready <-chan struct{} = b.closed
	if s := b.sess; s != nil {
		s.queueLocked(subCommand{channel: b.channel(tenant)})
		ready = b.barrierLocked(s, false)
	}
	b.tenantsMu.Lock()
	b.tenants[tenant] = &tenantChannel{ready: ready}
	b.tenantsMu.Unlock()
	return ready
}

// UnwatchTenant implements TenantRouter: it queues the unsubscription. It
// never waits for Redis.
func (b *RedisBackplane) UnwatchTenant(tenant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tenantsMu.Lock()
	delete(b.tenants, tenant)
	b.tenantsMu.Unlock()
	if s := b.sess; s != nil {
		s.queueLocked(subCommand{channel: b.channel(tenant), unsubscribe: true})
	}
}

// queueLocked queues c for s's writer.
func (s *redisSession) queueLocked(c subCommand) {
	s.queue = append(s.queue, c)
	s.wakeLocked()
}

func (s *redisSession) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// barrierLocked queues a barrier ping on s after what is queued; the channel
// is closed when it is answered or the session ends.
func (b *RedisBackplane) barrierLocked(s *redisSession, setUp bool) <-chan struct{} {
	s.nextPing++
	done := make(chan struct{})
	s.barriers = append(s.barriers, barrier{id: s.nextPing, done: done, setUp: setUp})
	s.pingTo = s.nextPing
	s.wakeLocked()
	return done
}

// writer sends what is queued for s, in order, until s ends. A failed write
// ends s; the receiver then sees its connection close and reconnects.
func (b *RedisBackplane) writer(ctx context.Context, s *redisSession) {
	var batch []subCommand
	var channels []string
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		b.mu.Lock()
		if s.ended {
			b.mu.Unlock()
			return
		}
		batch, s.queue = s.queue, batch[:0]
		pingTo, health := s.pingTo, s.health
		s.pingTo, s.health = 0, false
		b.mu.Unlock()

		err := b.send(ctx, s, batch, &channels, pingTo, health)
		clear(batch)
		if err != nil {
			b.mu.Lock()
			b.breakLocked(s, err)
			b.mu.Unlock()
			return
		}
	}
}

// send writes one batch on s: runs of subscriptions and unsubscriptions as
// one command each, in order, then one ping.
func (b *RedisBackplane) send(ctx context.Context, s *redisSession, batch []subCommand, channels *[]string, pingTo uint64, health bool) error {
	for i := 0; i < len(batch); {
		unsubscribe := batch[i].unsubscribe
		chs := (*channels)[:0]
		for ; i < len(batch) && batch[i].unsubscribe == unsubscribe; i++ {
			chs = append(chs, batch[i].channel)
		}
		*channels = chs
		var err error
		if unsubscribe {
			err = s.ps.Unsubscribe(ctx, chs...)
		} else {
			err = s.ps.Subscribe(ctx, chs...)
		}
		clear(chs)
		if err != nil {
			verb := "subscribe to"
			if unsubscribe {
				verb = "unsubscribe from"
			}
			return fmt.Errorf("%s %d tenant channels: %w", verb, len(chs), err)
		}
	}
	payload := ""
	switch {
	case pingTo != 0:
		payload = barrierPrefix + strconv.FormatUint(pingTo, 10)
	case health:
		payload = healthPing
	default:
		return nil
	}
	if err := s.ps.Ping(ctx, payload); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// pong handles the reply to a ping of session s.
func (b *RedisBackplane) pong(s *redisSession, payload string) {
	idText, ok := strings.CutPrefix(payload, barrierPrefix)
	if !ok {
		return // a health or connect ping: lastRead is all it is for
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.ended {
		return
	}
	n := 0
	for _, br := range s.barriers {
		if br.id > id {
			break
		}
		close(br.done)
		n++
		if br.setUp {
			b.upSession.Store(s.id)
			b.metrics.BackplaneUp(true)
			b.downErr = nil
			b.tenantsMu.RLock()
			n := len(b.tenants)
			b.tenantsMu.RUnlock()
			b.log.Info("redis backplane connected: cross-node delivery is up", "tenants", n)
		}
	}
	s.barriers = s.barriers[n:]
}

// breakLocked ends session s after a failed write: the receiver sees its
// connection close and reconnects.
func (b *RedisBackplane) breakLocked(s *redisSession, err error) {
	b.endLocked(s, err)
	// Close takes the PubSub's own lock, which a reconnection attempt inside
	// go-redis may hold for a dial timeout; do not make subscribers wait.
	go func() { _ = s.ps.Close() }()
}

// endLocked ends session s once: it detaches it, stops its writer, releases
// everyone waiting on it and marks the backplane down for the reason err.
func (b *RedisBackplane) endLocked(s *redisSession, err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	if b.sess == s {
		b.sess = nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.queue = nil
	for _, br := range s.barriers {
		close(br.done)
	}
	s.barriers = nil
	b.downErr = err
	if s.wasUp = s.id != 0 && b.upSession.CompareAndSwap(s.id, 0); s.wasUp {
		b.metrics.BackplaneUp(false)
	}
}

// Start implements Backplane: in the background it keeps a subscriber
// connection to Redis, reconnecting with backoff, and delivers what it
// receives until ctx ends. Then it closes the Redis client; a RedisBackplane
// starts once.
func (b *RedisBackplane) Start(ctx context.Context, deliver func(string, []payloads.Notification)) (<-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		return nil, errors.New("redis backplane: already started")
	}
	b.running = true
	b.deliver.Store(&deliver)
	stopped := make(chan struct{})
	go func() { defer close(stopped); b.run(ctx, deliver) }()
	return stopped, nil
}

// run is the subscriber connection's loop, until ctx ends.
func (b *RedisBackplane) run(ctx context.Context, deliver func(string, []payloads.Notification)) {
	defer func() {
		b.deliver.Store(nil)
		b.mu.Lock()
		b.downErr = ErrNotRunning
		b.mu.Unlock()
		if err := b.client.Close(); err != nil {
			b.log.Warn("close redis client", "err", err)
		}
	}()

	attempt := 0
	var downSince time.Time
	for {
		s := &redisSession{}
		err := b.session(ctx, s, deliver)
		b.mu.Lock()
		b.endLocked(s, err) // no-op if a failed write or the watchdog ended it first
		wasUp, err := s.wasUp, s.err
		b.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		// Nothing more comes from s: deliver what it was left to bring back.
		b.deliverStranded(deliver)
		if wasUp {
			attempt, downSince = 0, time.Now()
			b.log.Warn("redis backplane lost its connection: publishes reach this node only until it reconnects", "err", err)
		} else if attempt == 0 && downSince.IsZero() {
			downSince = time.Now()
			b.log.Warn("redis backplane cannot connect: publishes reach this node only until it does", "err", err)
		} else {
			b.log.Debug("redis backplane reconnection failed", "err", err, "attempt", attempt, "down_for", time.Since(downSince).Round(time.Millisecond))
		}
		wait := backoff(b.opts.MinBackoff, b.opts.MaxBackoff, attempt)
		attempt++
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		b.metrics.BackplaneReconnect()
	}
}

// backoff returns the wait before reconnection attempt n (from 0): doubling
// from lo up to hi, with the upper half jittered so that many nodes do not
// reconnect in step after a Redis restart.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 32 && lo<<n < hi && lo<<n > 0 {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one subscriber connection until it fails or ctx ends.
func (b *RedisBackplane) session(ctx context.Context, s *redisSession, deliver func(string, []payloads.Notification)) error {
	s.ps = b.client.Subscribe(ctx)
	defer s.ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.ps.Close() })
	defer stop()

	// Dial before the session is current, so that nothing queues behind a
	// connection that cannot be made.
	if err := s.ps.Ping(ctx, connectPing); err != nil {
		return fmt.Errorf("connect to redis: %w", err)
	}
	s.touch()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	s.cancel, s.wake = cancel, make(chan struct{}, 1)
	wg.Go(func() { b.writer(sctx, s) })
	b.start(s)
	wg.Go(func() { b.watchdog(sctx, s) })

	for {
		msg, err := s.ps.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receive from redis: %w", err)
		}
		s.touch()
		switch m := msg.(type) {
		case *redis.Message:
			b.receive(m, deliver)
		case *redis.Pong:
			b.pong(s, m.Payload)
		case *redis.Subscription:
			// Confirmations; the barrier pings that follow them are what
			// WatchTenant waits for.
		}
		// Again after delivering, so that the watchdog counts only the time
		// spent waiting for Redis, not a long fan-out of this node.
		s.touch()
	}
}

// start queues the subscriptions of session s to every watched tenant, and
// the barrier that makes the node up, and makes s current.
func (b *RedisBackplane) start(s *redisSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tenantsMu.RLock()
	s.queue = slices.Grow(s.queue, len(b.tenants))
	for t := range b.tenants {
		s.queue = append(s.queue, subCommand{channel: b.channel(t)})
	}
	b.tenantsMu.RUnlock()
	b.lastID++
	s.id = b.lastID
	b.barrierLocked(s, true)
	b.sess = s
}

// watchdog pings an idle connection and closes it when Redis stops answering
// (a paused server or a network partition does not close sockets).
func (b *RedisBackplane) watchdog(ctx context.Context, s *redisSession) {
	every := b.opts.HealthInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, s.lastRead.Load()))
		switch {
		case idle >= 3*every:
			b.log.Warn("redis backplane: no reply from redis, dropping the connection", "silent_for", idle.Round(time.Millisecond))
			b.mu.Lock()
			b.breakLocked(s, fmt.Errorf("no reply from redis for %v", idle.Round(time.Millisecond)))
			b.mu.Unlock()
			return
		case idle >= every:
			// Through the writer: the watchdog itself must not wait for a
			// write, or it could not drop a connection whose writes hang.
			b.mu.Lock()
			s.health = true
			s.wakeLocked()
			b.mu.Unlock()
		}
	}
}

func (s *redisSession) touch() { s.lastRead.Store(time.Now().UnixNano()) }

// receive delivers one message from Redis. Undecodable messages are counted
// and logged (at most every 10s, with how many were dropped), never fatal.
func (b *RedisBackplane) receive(m *redis.Message, deliver func(string, []payloads.Notification)) {
	b.metrics.BackplaneMessage("received")
	tenant, ok := strings.CutPrefix(m.Channel, b.opts.Prefix)
	if !ok || tenant == "" {
		b.decodeFailed(m, fmt.Errorf("channel %q is not a tenant channel", m.Channel))
		return
	}
	h, err := decodeHeader(m.Payload)
	if err != nil {
		b.decodeFailed(m, err)
		return
	}
	if h.node == b.node {
		b.deliverMu.Lock()
		defer b.deliverMu.Unlock()
		if ns, handled := b.takeOwn(h.seq); handled {
			if ns != nil {
				deliver(tenant, ns)
			}
			return
		}
	}
	ns, err := decodeNotifications(m.Payload)
	if err != nil {
		b.decodeFailed(m, err)
		return
	}
	deliver(tenant, ns)
}

func (b *RedisBackplane) decodeFailed(m *redis.Message, err error) {
	b.metrics.BackplaneMessage("decode_failed")
	b.decodeDropped++
	if time.Since(b.decodeLogged) < 10*time.Second {
		return
	}
	b.log.Warn("redis backplane dropped a message it cannot decode", "channel", m.Channel, "bytes", len(m.Payload), "err", err, "dropped_since_last_report", b.decodeDropped)
	b.decodeLogged, b.decodeDropped = time.Now(), 0
}
