package notify

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/subscriptions"
)

// routerBackplane is a memory backplane that records the TenantRouter calls
// and confirms each watch after a delay.
type routerBackplane struct {
	*MemoryBackplane
	delay time.Duration

	mu    sync.Mutex
	calls []string
}

func (r *routerBackplane) WatchTenant(tenant string) <-chan struct{} {
	r.mu.Lock()
	r.calls = append(r.calls, "watch "+tenant)
	r.mu.Unlock()
	ready := make(chan struct{})
	time.AfterFunc(r.delay, func() { close(ready) })
	return ready
}

func (r *routerBackplane) UnwatchTenant(tenant string) {
	r.mu.Lock()
	r.calls = append(r.calls, "unwatch "+tenant)
	r.mu.Unlock()
}

func (r *routerBackplane) takeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// startHub starts a hub on bp until the test ends, and waits until bp
// reaches every node.
func startHub(tb testing.TB, bp Backplane) *Hub {
	tb.Helper()
	h := New(Options{Backplane: bp})
	ctx, cancel := context.WithCancel(context.Background())
	stopped, err := h.Start(ctx)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cancel(); <-stopped })
	for bp.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	return h
}

type fakeSub struct {
	tenant string
	subs   subscriptions.Set
}

func (s *fakeSub) Tenant() string                    { return s.tenant }
func (s *fakeSub) Subscriptions() *subscriptions.Set { return &s.subs }
func (s *fakeSub) Encoder() Encoder                  { return nil }
func (s *fakeSub) Deliver([]byte) bool               { return true }

func TestTenantRouterHook(t *testing.T) {
	r := &routerBackplane{MemoryBackplane: NewMemoryBackplane(), delay: 50 * time.Millisecond}
	h := New(Options{Backplane: r})
	ev := payloads.Filter{Event: payloads.EventLicenceActivated}
	res := payloads.Filter{Event: payloads.EventResourcesChanged}
	expect := func(want ...string) {
		t.Helper()
		if got := r.takeCalls(); !slices.Equal(got, want) {
			t.Fatalf("router calls %q, want %q", got, want)
		}
	}
	a1, a2, b1 := &fakeSub{tenant: "A"}, &fakeSub{tenant: "A"}, &fakeSub{tenant: "B"}

	// The first subscription of a tenant waits for the backplane.
	start := time.Now()
	if _, err := h.Subscribe(a1, ev); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < r.delay {
		t.Fatalf("Subscribe returned after %v, before the backplane confirmed (%v)", waited, r.delay)
	}
	expect("watch A")
	// More subscriptions, of this or another connection, do not call it.
	h.Subscribe(a1, res)
	h.Subscribe(a2, ev)
	h.Subscribe(b1, ev)
	expect("watch B")
	// The tenant stays watched until its last connection has no subscriptions.
	h.Unsubscribe(a1, ev)
	h.Unsubscribe(a1, res)
	expect()
	h.Unsubscribe(a2, res) // not subscribed: changes nothing
	h.Disconnect(a1)       // no subscriptions left: changes nothing
	expect()
	h.Disconnect(a2)
	expect("unwatch A")
	h.Subscribe(a1, ev)
	expect("watch A")
	h.Disconnect(a1)
	h.Disconnect(b1)
	expect("unwatch A", "unwatch B")
	if n := h.tenants.watched(); n != 0 {
		t.Fatalf("%d tenants still watched", n)
	}
}

// TestTenantRouterHookConcurrent churns subscriptions of a few tenants from
// many goroutines: watches and unwatches must alternate per tenant and end
// balanced. Run with -race.
func TestTenantRouterHookConcurrent(t *testing.T) {
	r := &routerBackplane{MemoryBackplane: NewMemoryBackplane()}
	h := startHub(t, r)
	ev := payloads.Filter{Event: payloads.EventLicenceActivated}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &fakeSub{tenant: []string{"A", "B", "C"}[g%3]}
			for range 200 {
				h.Subscribe(s, ev)
				h.Unsubscribe(s, ev)
				h.Subscribe(s, ev)
				h.Disconnect(s)
			}
		}()
	}
	wg.Wait()
	state := map[string]bool{}
	for _, c := range r.takeCalls() {
		var op, tenant string
		if n, _ := fmt.Sscan(c, &op, &tenant); n != 2 {
			t.Fatalf("bad call %q", c)
		}
		if state[tenant] == (op == "watch") {
			t.Fatalf("%s while already in that state", c)
		}
		state[tenant] = op == "watch"
	}
	for tenant, watched := range state {
		if watched {
			t.Fatalf("tenant %s left watched", tenant)
		}
	}
}
