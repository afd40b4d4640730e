package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"notifyhub/notify/redistest"
	"notifyhub/payloads"
)

// batch is one call of a backplane's deliver function.
type batch struct {
	tenant string
	ns     []payloads.Notification
}

// fakeBackplaneMetrics records what a backplane reports.
type fakeBackplaneMetrics struct {
	mu         sync.Mutex
	up         bool
	reconnects int
	messages   map[string]int
}

func (m *fakeBackplaneMetrics) BackplaneUp(up bool) { m.mu.Lock(); m.up = up; m.mu.Unlock() }
func (m *fakeBackplaneMetrics) BackplaneReconnect() { m.mu.Lock(); m.reconnects++; m.mu.Unlock() }
func (m *fakeBackplaneMetrics) BackplaneMessage(outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.messages == nil {
		m.messages = map[string]int{}
	}
	m.messages[outcome]++
}

func (m *fakeBackplaneMetrics) count(outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.messages[outcome]
}

func (m *fakeBackplaneMetrics) isUp() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.up }

// node is a running RedisBackplane with what it delivered.
type node struct {
	t       *testing.T
	b       *RedisBackplane
	got     chan batch
	metrics *fakeBackplaneMetrics
	// hook, when set, sees each batch in the deliver call, before got does.
	hook atomic.Pointer[func(batch)]
}

// testLogger logs through t, so a failing test shows the backplane's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startNode runs a backplane on url until the test ends.
func startNode(t *testing.T, url string, mutate ...func(*RedisOptions)) *node {
	t.Helper()
	n := &node{t: t, got: make(chan batch, 1024), metrics: &fakeBackplaneMetrics{}}
	opts := RedisOptions{
		URL:            url,
		PublishTimeout: 500 * time.Millisecond,
		HealthInterval: 100 * time.Millisecond,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		Logger:         testLogger(t),
		Metrics:        n.metrics,
	}
	for _, m := range mutate {
		m(&opts)
	}
	b, err := NewRedisBackplane(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := b.Start(ctx, func(tenant string, ns []payloads.Notification) {
		if h := n.hook.Load(); h != nil {
			(*h)(batch{tenant, ns})
		}
		n.got <- batch{tenant, ns}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return n
}

// startTwoNodes starts a Redis and two nodes on it, both ready.
func startTwoNodes(t *testing.T) (*redistest.Server, *node, *node) {
	t.Helper()
	r := redistest.Start(t)
	a, b := startNode(t, r.URL()), startNode(t, r.URL())
	a.waitReady(true)
	b.waitReady(true)
	return r, a, b
}

// waitReady waits until Ready reports want (nil: ready).
func (n *node) waitReady(ready bool) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.b.Ready()
		if (err == nil) == ready {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("Ready() = %v after 10s; want ready=%v", err, ready)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watch watches tenant and waits for Redis to confirm it.
func (n *node) watch(tenant string) {
	n.t.Helper()
	select {
	case <-n.b.WatchTenant(tenant):
	case <-time.After(5 * time.Second):
		n.t.Fatalf("WatchTenant(%s) not confirmed within 5s", tenant)
	}
}

func (n *node) publish(tenant string, ns ...payloads.Notification) error {
	return n.b.Publish(context.Background(), tenant, ns)
}

func (n *node) mustPublish(tenant string, ns ...payloads.Notification) {
	n.t.Helper()
	if err := n.publish(tenant, ns...); err != nil {
		n.t.Fatalf("publish: %v", err)
	}
}

// next returns the next delivered batch.
func (n *node) next() batch {
	n.t.Helper()
	select {
	case b := <-n.got:
		return b
	case <-time.After(5 * time.Second):
		n.t.Fatalf("nothing delivered within 5s")
	}
	return batch{}
}

// expectRefs requires the next batch to be of tenant and hold refs.
func (n *node) expectRefs(tenant string, refs ...string) {
	n.t.Helper()
	b := n.next()
	if b.tenant != tenant || !reflect.DeepEqual(refsOf(b.ns), refs) {
		n.t.Fatalf("delivered %s %v; want %s %v", b.tenant, refsOf(b.ns), tenant, refs)
	}
}

// expectNothing requires that nothing was delivered (call it after a
// sentinel proved that everything published before has arrived).
func (n *node) expectNothing() {
	n.t.Helper()
	select {
	case b := <-n.got:
		n.t.Fatalf("unexpected delivery %s %v", b.tenant, refsOf(b.ns))
	default:
	}
}

func refsOf(ns []payloads.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		if n.Reference != nil {
			out[i] = *n.Reference
		}
	}
	return out
}

func note(ref string) payloads.Notification {
	return payloads.Notification{
		Event:     payloads.EventLicenceActivated,
		Reference: &ref,
		CreatedAt: time.Date(2024, 7, 1, 12, 51, 52, 558000000, time.UTC),
		Payload:   payloads.RawJSON(`{"licence":"` + ref + `"}`),
	}
}

func TestRedisBackplaneCrossNode(t *testing.T) {
	_, a, b := startTwoNodes(t)

	b.watch("t1")
	b.watch("t2")
	str := func(s string) *string { return &s }
	exp := time.Date(2999, 1, 1, 0, 0, 0, 0, time.FixedZone("", 2*3600))
	full := payloads.Notification{
		Event:     payloads.EventResourcesChanged,
		Sender:    &payloads.Sender{ConnectionID: str("conn-1"), User: &payloads.UserIdentity{User: str("SYSTEM"), Device: str("SYSTEM")}},
		Reference: str("full"),
		CreatedAt: time.Date(2024, 7, 1, 12, 51, 52, 558123456, time.UTC),
		ExpiresAt: &exp,
		Payload:   payloads.RawJSON(`{"u":{"u":"999","d":"BackOffice","f":null},"n":"devices","a":1,"i":{"i":"x","n":"devices","v":7},"r":[{"id":"x","total":12.5}]}`),
		Routing:   payloads.Routing{Resource: "devices", Action: payloads.ActionCreated, Site: "s1", Users: []string{"u1", "u2"}},
	}
	noPayload := note("no-payload")
	noPayload.Payload = nil
	a.mustPublish("t1", full, noPayload)
	got := b.next()
	if got.tenant != "t1" || len(got.ns) != 2 {
		t.Fatalf("got %s %v", got.tenant, refsOf(got.ns))
	}
	// Every field survives the trip, the routing included.
	if !got.ns[0].CreatedAt.Equal(full.CreatedAt) || !got.ns[0].ExpiresAt.Equal(exp) {
		t.Fatalf("times: got %v %v", got.ns[0].CreatedAt, got.ns[0].ExpiresAt)
	}
	got.ns[0].CreatedAt, got.ns[0].ExpiresAt = full.CreatedAt, full.ExpiresAt
	if !reflect.DeepEqual(got.ns[0], full) {
		t.Fatalf("got\n%+v\nwant\n%+v", got.ns[0], full)
	}
	if got.ns[1].Payload != nil || got.ns[1].Sender != nil || got.ns[1].ExpiresAt != nil {
		t.Fatalf("nulls came back as %+v", got.ns[1])
	}

	// Tenant isolation on the wire: a publish for a tenant that B does not
	// watch never reaches it, and A (watching nothing) receives nothing.
	a.mustPublish("t3", note("other-tenant"))
	a.mustPublish("t2", note("sentinel"))
	b.expectRefs("t2", "sentinel")
	b.expectNothing()
	a.expectNothing()
}

func TestRedisBackplaneOrderAndExactlyOnce(t *testing.T) {
	_, a, b := startTwoNodes(t)
	a.watch("t")
	b.watch("t")

	// Two publishers on A and one on B, concurrently: every node gets every
	// batch once, and each publisher's batches in the order it made them.
	const perPublisher = 200
	publishers := []struct {
		n    *node
		name string
	}{{a, "a1"}, {a, "a2"}, {b, "b1"}}
	var wg sync.WaitGroup
	for _, p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				if err := p.n.publish("t", note(fmt.Sprintf("%s-%d", p.name, i))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, n := range []*node{a, b} {
		next := map[string]int{}
		for range len(publishers) * perPublisher {
			got := n.next()
			var name string
			var i int
			if _, err := fmt.Sscanf(strings.Replace(refsOf(got.ns)[0], "-", " ", 1), "%s %d", &name, &i); err != nil {
				t.Fatal(err)
			}
			if i != next[name] {
				t.Fatalf("publisher %s: got #%d, want #%d", name, i, next[name])
			}
			next[name]++
		}
		n.expectNothing()
	}
	if got := a.metrics.count("published"); got != 2*perPublisher {
		t.Errorf("A counted %d published, want %d", got, 2*perPublisher)
	}
}

func TestRedisBackplaneUnwatch(t *testing.T) {
	_, a, b := startTwoNodes(t)
	b.watch("t1")
	b.watch("t2")
	a.mustPublish("t1", note("1"))
	b.expectRefs("t1", "1")

	b.b.UnwatchTenant("t1")
	// UNSUBSCRIBE and the sentinel's channel share B's connection, so once
	// the sentinel is in, the unsubscription had taken effect.
	b.watch("t3")
	a.mustPublish("t1", note("after-unwatch"))
	a.mustPublish("t3", note("sentinel"))
	b.expectRefs("t3", "sentinel")
	b.expectNothing()
}

func TestRedisBackplaneDecodeErrors(t *testing.T) {
	r := redistest.Start(t)
	b := startNode(t, r.URL())
	b.waitReady(true)
	b.watch("t")
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	good := encodeMessage(wireHeader{node: 1, seq: 1}, []payloads.Notification{note("good")})
	bad := map[string][]byte{
		"empty":          {},
		"future format":  append([]byte{2}, good[1:]...),
		"short header":   good[:9],
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(good[:len(good):len(good)], 0),
		"empty batch":    append(good[:wireHeaderLen:wireHeaderLen], 0),
	}
	for name, msg := range bad {
		if err := raw.Publish(context.Background(), "notifyhub:t", msg).Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := raw.Publish(context.Background(), "notifyhub:t", good).Err(); err != nil {
		t.Fatal(err)
	}
	b.expectRefs("t", "good")
	b.expectNothing()
	if got := b.metrics.count("decode_failed"); got != len(bad) {
		t.Fatalf("decode_failed = %d, want %d", got, len(bad))
	}
	if err := b.b.Ready(); err != nil {
		t.Fatalf("not ready after bad messages: %v", err)
	}
}

// TestRedisBackplaneRestart is the fault behaviour the README describes:
// while Redis is down a node serves its own subscribers and says that other
// nodes were not reached; nothing published meanwhile is replayed; after
// Redis is back every node resubscribes (tenants watched meanwhile
// included) and cross-node delivery resumes.
func TestRedisBackplaneRestart(t *testing.T) {
	r, a, b := startTwoNodes(t)
	a.watch("t")
	b.watch("t")
	a.mustPublish("t", note("before"))
	a.expectRefs("t", "before")
	b.expectRefs("t", "before")

	r.Stop()
	a.waitReady(false)
	b.waitReady(false)
	if a.metrics.isUp() || b.metrics.isUp() {
		t.Fatal("up gauge still 1 while Redis is down")
	}
	err := a.publish("t", note("during"))
	if !errors.Is(err, ErrCrossNode) || !strings.Contains(err.Error(), "delivered to this node's subscribers only") {
		t.Fatalf("publish while Redis is down: %v; want ErrCrossNode, delivered locally", err)
	}
	a.expectRefs("t", "during")
	err = a.publish("unwatched", note("nobody-here"))
	if !errors.Is(err, ErrCrossNode) || !strings.Contains(err.Error(), "no subscribers of the tenant") {
		t.Fatalf("publish for an unwatched tenant while Redis is down: %v", err)
	}
	// Watching while disconnected does not block; the tenant is
	// subscribed on reconnection.
	select {
	case <-b.b.WatchTenant("late"):
	case <-time.After(time.Second):
		t.Fatal("WatchTenant blocked while Redis is down")
	}

	r.Restart()
	a.waitReady(true)
	b.waitReady(true)
	a.mustPublish("t", note("after"))
	a.expectRefs("t", "after")
	b.expectRefs("t", "after") // "during" never reaches B
	a.mustPublish("late", note("late"))
	b.expectRefs("late", "late")
	a.expectNothing()
	b.expectNothing()
	if !a.metrics.isUp() || a.metrics.reconnects == 0 {
		t.Fatalf("metrics after reconnect: up %v, reconnects %d", a.metrics.isUp(), a.metrics.reconnects)
	}
}

// TestRedisBackplanePause covers a Redis that stops answering without
// closing connections: the health check notices, publishes time out into
// local delivery, and the node recovers when Redis answers again.
func TestRedisBackplanePause(t *testing.T) {
	r, a, b := startTwoNodes(t)
	a.watch("t")
	b.watch("t")

	r.Pause()
	start := time.Now()
	a.waitReady(false)
	t.Logf("silent Redis detected after %v", time.Since(start).Round(time.Millisecond))
	if err := a.publish("t", note("paused")); !errors.Is(err, ErrCrossNode) {
		t.Fatalf("publish while Redis is paused: %v; want ErrCrossNode", err)
	}
	a.expectRefs("t", "paused")
	r.Resume()
	a.waitReady(true)
	b.waitReady(true)
	a.mustPublish("t", note("resumed"))
	a.expectRefs("t", "resumed")
	b.expectRefs("t", "resumed")
	a.expectNothing()
	b.expectNothing()
}

// TestRedisBackplaneSubscriberLost covers a node whose subscriber connection
// is gone while Redis still accepts publishes (after a Redis restart the
// publishing connections redial at once, the subscriber after its backoff):
// the node's own subscribers get its publishes directly, once.
func TestRedisBackplaneSubscriberLost(t *testing.T) {
	r := redistest.Start(t)
	a := startNode(t, r.URL(), func(o *RedisOptions) { o.MinBackoff, o.MaxBackoff = time.Second, time.Second })
	a.waitReady(true)
	a.watch("t")
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	if err := raw.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	a.waitReady(false)
	a.mustPublish("t", note("while-resubscribing"))
	a.expectRefs("t", "while-resubscribing")
	a.waitReady(true)
	a.mustPublish("t", note("after"))
	a.expectRefs("t", "after")
	a.expectNothing()
}

// TestRedisBackplaneStrandedOwnPublishes covers a node whose subscriber
// connection dies after Redis accepted its publishes and before they came
// back on it (a Redis restart or a reset while the receiver is busy
// delivering): Publish answered that they were accepted, so the node's own
// subscribers must still get them, once, in order with what comes later.
func TestRedisBackplaneStrandedOwnPublishes(t *testing.T) {
	r := redistest.Start(t)
	a := startNode(t, r.URL(), func(o *RedisOptions) {
		// Only the killed connection may end the session: not the watchdog
		// while the receiver is held, not a quick reconnection before the
		// test has seen the node down.
		o.HealthInterval = time.Minute
		o.MinBackoff, o.MaxBackoff = time.Second, time.Second
	})
	a.waitReady(true)
	a.watch("t")
	held, release := make(chan struct{}), make(chan struct{})
	hook := func(b batch) {
		if refsOf(b.ns)[0] == "hold" {
			close(held)
			<-release
		}
	}
	a.hook.Store(&hook)
	a.mustPublish("t", note("hold"))
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the receiver did not deliver the first publish")
	}
	// The receiver is busy; meanwhile Redis drops the subscriber connection.
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	if err := raw.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// Redis accepts these, with nobody subscribed, while the node still
	// holds its session for up: Publish leaves them to the receiver.
	a.mustPublish("t", note("p1"))
	a.mustPublish("t", note("p2"))
	if err := a.b.Ready(); err != nil {
		t.Fatalf("the node noticed the lost connection too early for this test: %v", err)
	}
	close(release)
	a.waitReady(false)
	a.mustPublish("t", note("p3")) // delivered by Publish: the node is down
	a.waitReady(true)
	a.mustPublish("t", note("p4")) // brought back by the new connection
	for _, ref := range []string{"hold", "p1", "p2", "p3", "p4"} {
		a.expectRefs("t", ref)
	}
	a.expectNothing()
}

func TestRedisBackplaneUnreachableAtStart(t *testing.T) {
	r := redistest.Start(t)
	url := r.URL()
	r.Stop()
	a := startNode(t, url)
	if err := a.b.Ready(); err == nil {
		t.Fatal("ready without Redis")
	}
	a.watch("t") // does not block
	if err := a.publish("t", note("local")); !errors.Is(err, ErrCrossNode) {
		t.Fatalf("publish: %v", err)
	}
	a.expectRefs("t", "local")
	r.Restart()
	a.waitReady(true)
	a.mustPublish("t", note("redis"))
	a.expectRefs("t", "redis")
}

func TestRedisBackplaneNotRunning(t *testing.T) {
	b, err := NewRedisBackplane(RedisOptions{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), "t", []payloads.Notification{note("x")}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Publish before Start: %v", err)
	}
	if _, err := NewRedisBackplane(RedisOptions{URL: "http://nope"}); err == nil {
		t.Fatal("accepted a non-redis URL")
	}
}

// TestOwnPublishes checks the bookkeeping that keeps a node's own publishes
// exactly-once when the node has to deliver one itself.
func TestOwnPublishes(t *testing.T) {
	b, err := NewRedisBackplane(RedisOptions{URL: "redis://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ns := []payloads.Notification{note("x")}
	watch := &tenantChannel{ready: b.closed} // confirmed
	b.tenants["t"] = watch
	const up = 1
	b.upSession.Store(up)
	var delivered []string
	deliver := func(_ string, ns []payloads.Notification) { delivered = append(delivered, refsOf(ns)...) }
	expectDelivered := func(want ...string) {
		t.Helper()
		if !slices.Equal(delivered, want) {
			t.Fatalf("delivered %q, want %q", delivered, want)
		}
		delivered = nil
	}

	// Normal: received before or after Publish returns; the receiver uses
	// the batch it has and the entry goes away.
	b.remember(1, "t", ns, watch)
	if got, ok := b.takeOwn(1); !ok || len(got) != 1 {
		t.Fatal("own publish not recognised")
	}
	if !b.leaveToReceiver(1, up) {
		t.Fatal("not left to the receiver of the session that is up")
	}
	b.remember(2, "t", ns, watch)
	b.leaveToReceiver(2, up)
	if got, ok := b.takeOwn(2); !ok || len(got) != 1 {
		t.Fatal("own publish not recognised after Publish returned")
	}
	// Claimed by Publish before the receiver had it: Publish delivers...
	b.remember(3, "t", ns, watch)
	if !b.claim(3) {
		t.Fatal("claimed publish not delivered by Publish")
	}
	// ... and if it comes back after all, the receiver drops it.
	if got, ok := b.takeOwn(3); !ok || got != nil {
		t.Fatal("publish delivered by Publish delivered again")
	}
	// Claimed after the receiver had it: nothing more to do.
	b.remember(4, "t", ns, watch)
	b.takeOwn(4)
	if b.claim(4) {
		t.Fatal("publish delivered twice")
	}
	// Unknown sequence numbers (other nodes', pruned) are decoded.
	if _, ok := b.takeOwn(99); ok {
		t.Fatal("unknown publish taken")
	}

	// Left to a session that ended before bringing them back: delivered
	// here, oldest first, once, and dropped if they come back after all.
	b.remember(5, "t", []payloads.Notification{note("5")}, watch)
	b.remember(6, "t", []payloads.Notification{note("6")}, watch)
	b.leaveToReceiver(6, up)
	b.leaveToReceiver(5, up)
	b.deliverStranded(deliver)
	expectDelivered() // the session is still up: they may still come
	b.upSession.Store(0)
	if b.leaveToReceiver(7, up) {
		t.Fatal("left to a session that has ended")
	}
	b.deliverStranded(deliver)
	expectDelivered("5", "6")
	b.deliverStranded(deliver)
	expectDelivered()
	if got, ok := b.takeOwn(5); !ok || got != nil {
		t.Fatal("stranded publish delivered again when it came back")
	}
	// Publish delivering one itself delivers the stranded ones first.
	b.upSession.Store(2)
	b.remember(8, "t", []payloads.Notification{note("8")}, watch)
	b.leaveToReceiver(8, 2)
	b.upSession.Store(0)
	b.remember(9, "t", []payloads.Notification{note("9")}, watch)
	if !b.deliverOwn(9, "t", []payloads.Notification{note("9")}, deliver) {
		t.Fatal("not delivered by Publish while down")
	}
	expectDelivered("8", "9")
	// Not delivered when the tenant was unwatched or watched anew since, or
	// when the publish may have preceded the subscription: the connection
	// would not have brought those back either.
	b.upSession.Store(3)
	unconfirmed := &tenantChannel{ready: make(chan struct{})}
	b.tenants["u"] = unconfirmed
	b.remember(10, "t", []payloads.Notification{note("10")}, watch)
	b.remember(11, "u", []payloads.Notification{note("11")}, unconfirmed)
	b.remember(12, "t", []payloads.Notification{note("12")}, watch)
	for seq := uint64(10); seq <= 12; seq++ {
		b.leaveToReceiver(seq, 3)
	}
	b.tenants["t"] = &tenantChannel{ready: b.closed}
	b.upSession.Store(0)
	b.deliverStranded(deliver)
	expectDelivered()

	b.ownMu.Lock()
	for seq, o := range b.own {
		if !o.local {
			t.Errorf("entry %d left: %+v", seq, o)
		}
	}
	if b.stranded != 0 {
		t.Errorf("%d stranded entries counted, want 0", b.stranded)
	}
	b.ownMu.Unlock()
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for n := range 70 {
		d := backoff(lo, hi, n)
		ceil := min(hi, lo<<min(n, 20))
		if d < ceil/2 || d > ceil {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, ceil/2, ceil)
		}
	}
}

// BenchmarkFirstSubscribe is what routing by tenant costs a client: the
// Subscribe that gives a node its first connection of a tenant waits for
// Redis to confirm the channel subscription (one round trip), and the
// Disconnect of the last one unsubscribes. Later subscriptions of the tenant
// cost what they cost with one node.
//
//	go test -run '^$' -bench FirstSubscribe ./notify
func BenchmarkFirstSubscribe(b *testing.B) {
	ev := payloads.Filter{Event: payloads.EventLicenceActivated}
	run := func(b *testing.B, bp Backplane) {
		h := startHub(b, bp)
		subs := make([]fakeSub, b.N)
		b.ResetTimer()
		for i := range subs {
			s := &subs[i]
			s.tenant = "tenant-" + strconv.Itoa(i)
			if _, err := h.Subscribe(s, ev); err != nil {
				b.Fatal(err)
			}
			h.Disconnect(s)
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryBackplane()) })
	b.Run("redis", func(b *testing.B) {
		r := redistest.Start(b)
		bp, err := NewRedisBackplane(RedisOptions{URL: r.URL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, bp)
	})
}

// TestRedisSilentDoesNotStallSubscriptions: Redis drops the node's
// subscriber connection and then stops answering (a failover, a stalled
// host): the client library's reconnection waits for Redis with its dial
// and read timeouts. Meanwhile a connection that ends (Disconnect, from the
// endpoint's heartbeat path) must not wait for the network, nor hold up other
// tenants' subscriptions; a new subscription waits only until the node
// notices that Redis is silent. When Redis answers again, the node is
// subscribed to exactly the tenants it has subscribers for.
func TestRedisSilentDoesNotStallSubscriptions(t *testing.T) {
	r := redistest.Start(t)
	bp, err := NewRedisBackplane(RedisOptions{
		URL:            r.URL(),
		PublishTimeout: 8 * time.Second, // also the dial, read and write timeouts
		HealthInterval: 200 * time.Millisecond,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		Logger:         testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, bp)
	ev := payloads.Filter{Event: payloads.EventLicenceActivated}
	leaving, staying := &fakeSub{tenant: "leaving"}, &fakeSub{tenant: "staying"}
	for _, s := range []*fakeSub{leaving, staying} {
		if _, err := h.Subscribe(s, ev); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	const silence = 4 * time.Second
	pipe := raw.TxPipeline()
	pipe.ClientKillByFilter(ctx, "TYPE", "pubsub")
	pipe.Do(ctx, "CLIENT", "PAUSE", silence.Milliseconds(), "ALL")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	silent := time.Now()
	time.Sleep(100 * time.Millisecond) // the client library is reconnecting by now

	start := time.Now()
	h.Disconnect(leaving)
	disconnected := time.Since(start)
	if disconnected > time.Second {
		t.Errorf("Disconnect of the last connection of a tenant took %v while Redis was silent", disconnected)
	}
	start = time.Now()
	joining := &fakeSub{tenant: "joining"}
	if _, err := h.Subscribe(joining, ev); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > silence/2 {
		t.Errorf("Subscribe of a new tenant took %v while Redis was silent", d)
	} else {
		t.Logf("while Redis was silent: Disconnect took %v, Subscribe %v", disconnected, d)
	}
	if time.Since(silent) > silence-500*time.Millisecond {
		t.Fatalf("the test itself took too long to tell anything (%v)", time.Since(silent))
	}

	deadline := time.Now().Add(silence + 10*time.Second)
	for bp.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready again: %v", bp.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
	channels, err := raw.PubSubChannels(ctx, "notifyhub:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(channels)
	if want := []string{"notifyhub:joining", "notifyhub:staying"}; !slices.Equal(channels, want) {
		t.Fatalf("subscribed to %q, want %q", channels, want)
	}
}
