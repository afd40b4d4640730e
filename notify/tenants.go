package notify

import (
	"hash/maphash"
	"sync"
	"time"
)

// TenantRouter is implemented by backplanes that carry each tenant's
// publishes separately, so that a node receives only the tenants it has
// subscribers for. The hub calls WatchTenant when a tenant gets its first
// subscribed connection on this node and UnwatchTenant when it loses its last
// one. Calls for one tenant never overlap and alternate, starting with
// WatchTenant.
//
// Neither may wait for the network, not even for a write or a dial: the hub
// calls them under a lock that other tenants' subscriptions share, from
// client invocations and from connections that end (Disconnect runs on the
// endpoint's heartbeat path).
type TenantRouter interface {
	// WatchTenant starts receiving tenant's publishes. The channel it
	// returns is closed once publishes accepted from then on are received,
	// or once the backplane stops waiting (for example because it is
	// disconnected; it then watches the tenant again when it reconnects).
	WatchTenant(tenant string) <-chan struct{}
	// UnwatchTenant stops receiving tenant's publishes.
	UnwatchTenant(tenant string)
}

// trackerShards spreads the tenants over independently locked maps so that
// subscription churn in one tenant does not queue behind another's.
const trackerShards = 32

// watchTimeout bounds how long a Subscribe waits for the backplane to confirm
// that the node receives its tenant's publishes. Backplanes stop waiting by
// themselves when they lose their connection; this only guards against one
// that never answers, so that a client invocation cannot hang.
const watchTimeout = 5 * time.Second

// tenantTracker counts, per tenant, this node's connections that hold at
// least one subscription, and tells a TenantRouter when a count leaves or
// returns to zero.
//
// A connection's subscription set may only be read where no index call for
// the same connection runs concurrently. Subscribe runs on the connection's
// reader while Disconnect may come from elsewhere (a slow-consumer close, a
// token expiry), so every index call of a tenant and the reads of the set
// around it run under the tenant's shard lock. The index serialises writes of
// one tenant anyway, so the lock costs no parallelism.
type tenantTracker struct {
	router TenantRouter
	seed   maphash.Seed
	shards [trackerShards]trackerShard
}

type trackerShard struct {
	mu      sync.Mutex
	tenants map[string]*tenantWatch
}

// tenantWatch is one tenant that has subscribed connections on this node.
type tenantWatch struct {
	conns int
	ready <-chan struct{} // from WatchTenant
}

func newTenantTracker(r TenantRouter) *tenantTracker {
	t := &tenantTracker{router: r, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].tenants = make(map[string]*tenantWatch)
	}
	return t
}

// update runs op, which changes s's subscriptions in the index, and keeps the
// count of s's tenant. When s holds subscriptions afterwards it returns the
// channel to wait on before they are sure to receive publishes of other
// nodes; otherwise nil.
func (t *tenantTracker) update(s Subscriber, op func()) <-chan struct{} {
	tenant, set := s.Tenant(), s.Subscriptions()
	sh := &t.shards[maphash.String(t.seed, tenant)%trackerShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	before := set.Len() > 0
	op()
	after := set.Len() > 0
	w := sh.tenants[tenant]
	switch {
	case !before && after:
		if w == nil {
			w = &tenantWatch{ready: t.router.WatchTenant(tenant)}
			sh.tenants[tenant] = w
		}
		w.conns++
	case before && !after && w != nil:
		if w.conns--; w.conns == 0 {
			delete(sh.tenants, tenant)
			t.router.UnwatchTenant(tenant)
		}
	}
	if !after || w == nil {
		return nil
	}
	return w.ready
}

// wait blocks until ready is closed, for at most watchTimeout.
func (t *tenantTracker) wait(ready <-chan struct{}) {
	if ready == nil {
		return
	}
	select {
	case <-ready:
		return
	default:
	}
	timer := time.NewTimer(watchTimeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-timer.C:
	}
}

// watched returns the number of tenants being watched, for tests.
func (t *tenantTracker) watched() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.tenants)
		sh.mu.Unlock()
	}
	return n
}
