package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"notifyhub/notify/redistest"
	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/server/signalr"
	"notifyhub/testclient"
)

// Several hubs in one process sharing one redis-server: what a deployment
// of several nodes behind a load balancer looks like to clients and
// publishers.

// startCluster starts n hubs on the Redis at url and waits until each is
// ready (connected to Redis).
func startCluster(t *testing.T, url string, n int) []*hubEnv {
	t.Helper()
	nodes := make([]*hubEnv, n)
	for i := range nodes {
		nodes[i] = startHub(t, func(c *server.Config) { c.RedisURL = url })
	}
	for _, e := range nodes {
		e.waitReadyz(http.StatusOK)
	}
	return nodes
}

// waitReadyz polls /readyz until it answers status.
func (e *hubEnv) waitReadyz(status int) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, body := e.readyz()
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/readyz still %d %s after 15s; want %d", got, body, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *hubEnv) readyz() (int, string) {
	e.t.Helper()
	res, err := http.Get(e.srv.HubURL() + "/readyz")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// metric returns the value of one series (name with its labels, exactly as
// exposed, e.g. `notifyhub_backplane_messages_total{outcome="received"}`).
func (e *hubEnv) metric(series string) float64 {
	e.t.Helper()
	res, err := http.Get(e.srv.InternalURL() + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	e.t.Fatalf("metric %s not exposed", series)
	return 0
}

const receivedSeries = `notifyhub_backplane_messages_total{outcome="received"}`

// expectRefs requires the next notifications of c to have refs, in order.
func expectRefs(t *testing.T, c *testclient.Client, refs ...string) {
	t.Helper()
	for _, want := range refs {
		if got := ref(next(t, c)); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
}

// expectIdle requires that nothing is queued for c. Call it after a
// sentinel proved that everything published earlier has arrived.
func expectIdle(t *testing.T, c *testclient.Client) {
	t.Helper()
	select {
	case ev := <-c.Events():
		var m map[string]any
		_ = ev.Decode(&m)
		t.Fatalf("unexpected notification %q", ref(m))
	default:
	}
}

func TestClusterCrossNodeDelivery(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r.URL(), 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	devices := payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged,
		Resources: []payloads.SubscriptionRequestResource{{Name: "devices"}}}
	onA := a.dial("t1", testclient.Options{})
	a.subscribe(onA, licences)
	onB := b.dial("t1", testclient.Options{SkipNegotiation: true})
	b.subscribe(onB, devices)
	onBmsgpack := b.dial("t1", testclient.Options{Protocol: signalr.MessagePackProtocol{}})
	b.subscribe(onBmsgpack, licences)
	otherTenantOnC := c.dial("t2", testclient.Options{})
	c.subscribe(otherTenantOnC, resources)
	c.subscribe(otherTenantOnC, licences)
	receivedOnC := c.metric(receivedSeries)

	// One batch published on A: each connection of t1 gets what it
	// subscribed to, on whichever node it is, in either protocol.
	a.publish("t1", []any{
		resourceChanged("devices", payloads.ActionCreated, "dev-1"),
		resourceChanged("tickets", payloads.ActionCreated, "ticket-1"),
		licence("lic-1"),
	})
	expectRefs(t, onB, "dev-1")
	expectRefs(t, onA, "lic-1")
	expectRefs(t, onBmsgpack, "lic-1")

	// A publisher on C, which has no subscriber of t1, reaches A and B.
	c.publish("t1", licence("lic-from-c"))
	expectRefs(t, onA, "lic-from-c")
	expectRefs(t, onBmsgpack, "lic-from-c")

	// Tenant isolation across nodes: t2's only connection never saw t1's
	// traffic, and its node did not even receive it from Redis.
	a.publish("t2", licence("t2-sentinel"))
	expectRefs(t, otherTenantOnC, "t2-sentinel")
	expectIdle(t, otherTenantOnC)
	if got := c.metric(receivedSeries) - receivedOnC; got != 1 {
		t.Fatalf("node C received %v backplane messages, want 1 (only t2's)", got)
	}

	// Exactly once and in order, for a batch and for separate publishes
	// from two nodes: the sentinel would be preceded by any duplicate.
	var batch []any
	var want []string
	for i := range 50 {
		batch = append(batch, licence(fmt.Sprintf("batch-%d", i)))
		want = append(want, fmt.Sprintf("batch-%d", i))
	}
	a.publish("t1", batch)
	for i := range 10 {
		b.publish("t1", licence(fmt.Sprintf("single-%d", i)))
		want = append(want, fmt.Sprintf("single-%d", i))
	}
	b.publish("t1", licence("sentinel"))
	want = append(want, "sentinel")
	for _, cl := range []*testclient.Client{onA, onBmsgpack} {
		expectRefs(t, cl, want...)
		expectIdle(t, cl)
	}
	expectIdle(t, onB)
}

func TestClusterSubscribeThenPublishElsewhere(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r.URL(), 2)
	// A node subscribes to a tenant's channel with its first subscriber; the
	// Subscribe completion waits for Redis to confirm, so a publish on
	// another node right after it is never missed. Fresh tenants make every
	// round a first subscription.
	for i := range 20 {
		tenant := fmt.Sprintf("fresh-%d", i)
		cl := nodes[1].dial(tenant, testclient.Options{})
		nodes[1].subscribe(cl, licences)
		nodes[0].publish(tenant, licence("first"))
		expectRefs(t, cl, "first")
		cl.Close()
	}
}

// TestClusterRedisRestart is the fault behaviour the README describes.
func TestClusterRedisRestart(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r.URL(), 2)
	a, b := nodes[0], nodes[1]
	onA, onB := a.dial("t", testclient.Options{}), b.dial("t", testclient.Options{})
	a.subscribe(onA, licences)
	b.subscribe(onB, licences)
	a.publish("t", licence("before"))
	expectRefs(t, onA, "before")
	expectRefs(t, onB, "before")

	r.Stop()
	for _, e := range nodes {
		e.waitReadyz(http.StatusServiceUnavailable)
		if status, body := e.readyz(); !strings.Contains(body, `"degraded"`) {
			t.Fatalf("/readyz while Redis is down: %d %s", status, body)
		}
		if up := e.metric("notifyhub_backplane_up"); up != 0 {
			t.Fatalf("notifyhub_backplane_up = %v while Redis is down", up)
		}
	}
	// A publish while Redis is down: this node's subscribers get it, and
	// the publisher is told that the other nodes did not.
	res, err := a.pub.Publish(context.Background(), "t", licence("during"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusServiceUnavailable ||
		!strings.Contains(res.Error, "cross-node delivery failed") ||
		!strings.Contains(res.Error, "delivered to this node's subscribers only") {
		t.Fatalf("publish while Redis is down: %d %q", res.Status, res.Error)
	}
	expectRefs(t, onA, "during")
	// Clients keep connecting and subscribing while Redis is down.
	lateOnB := b.dial("t", testclient.Options{})
	b.subscribe(lateOnB, licences)
	newTenantOnB := b.dial("t-new", testclient.Options{})
	b.subscribe(newTenantOnB, licences)

	r.Restart()
	for _, e := range nodes {
		e.waitReadyz(http.StatusOK)
		if up := e.metric("notifyhub_backplane_up"); up != 1 {
			t.Fatalf("notifyhub_backplane_up = %v after Redis is back", up)
		}
	}
	a.publish("t", licence("after"))
	a.publish("t-new", licence("new-tenant"))
	expectRefs(t, onA, "after")
	expectRefs(t, onB, "after") // "during" is not replayed
	expectRefs(t, lateOnB, "after")
	expectRefs(t, newTenantOnB, "new-tenant")
	b.publish("t", licence("from-b"))
	for _, cl := range []*testclient.Client{onA, onB, lateOnB} {
		expectRefs(t, cl, "from-b")
		expectIdle(t, cl)
	}
}

// TestClusterNodeGoes shows that a node that goes away takes only its own
// connections with it.
func TestClusterNodeGoes(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r.URL(), 3)
	var clients []*testclient.Client
	for _, e := range nodes {
		cl := e.dial("t", testclient.Options{})
		e.subscribe(cl, licences)
		clients = append(clients, cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodes[2].srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown node C: %v", err)
	}
	select {
	case <-clients[2].Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node C's connection still open after its shutdown")
	}
	nodes[0].publish("t", licence("after-c"))
	nodes[1].publish("t", licence("from-b"))
	for _, cl := range clients[:2] {
		expectRefs(t, cl, "after-c", "from-b")
	}
	nodes[0].waitReadyz(http.StatusOK)
}

func TestClusterBadRedisURL(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	cfg.RedisURL = "http://user:secret@host:1/"
	_, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "HUB_REDIS_URL") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Start with a bad HUB_REDIS_URL: %v; want an error naming HUB_REDIS_URL without the password", err)
	}
}
