package server

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// connLimits counts open connections per tenant and per user so that one
// tenant or one runaway client cannot take the whole node.
type connLimits struct {
	perTenant, perUser int           // 0: unlimited
	window             time.Duration // see opened

	mu      sync.Mutex
	tenants map[string]int
	users   map[[2]string]int // {tenant, subject}
	// Opens in the current window. A negotiated connection counts in
	// tenants and users only once it connects, and until then lives for
	// the disconnect timeout: without this, one token could negotiate
	// connections without bound.
	opens      map[[2]string]int // {tenant, subject}; {tenant, ""} for the tenant
	windowFrom time.Time
}

// newConnLimits limits connections per tenant and per user, and the
// connections each may open (negotiate or connect without negotiating) per
// window to the same numbers.
func newConnLimits(perTenant, perUser int, window time.Duration) *connLimits {
	return &connLimits{perTenant: perTenant, perUser: perUser, window: window,
		tenants: map[string]int{}, users: map[[2]string]int{}, opens: map[[2]string]int{}}
}

// admit reports, before the upgrade, whether p may open one more connection,
// and counts the open. reserve is the authoritative check of open
// connections; this one lets the client get a 429.
func (l *connLimits) admit(p *Principal, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.full(p); err != nil {
		return err
	}
	if now.Sub(l.windowFrom) >= l.window {
		l.opens = map[[2]string]int{} // not clear: a map keeps its peak size
		l.windowFrom = now
	}
	user, tenant := [2]string{p.Tenant, p.Subject}, [2]string{p.Tenant, ""}
	if l.perTenant > 0 && l.opens[tenant] >= l.perTenant {
		return &authError{http.StatusTooManyRequests, fmt.Sprintf("tenant %q opened %d connections within %v, the most allowed; retry later", p.Tenant, l.perTenant, l.window)}
	}
	if l.perUser > 0 && l.opens[user] >= l.perUser {
		return &authError{http.StatusTooManyRequests, fmt.Sprintf("user %q opened %d connections within %v, the most allowed; retry later", p.Subject, l.perUser, l.window)}
	}
	l.opens[tenant]++
	l.opens[user]++
	return nil
}

func (l *connLimits) full(p *Principal) error {
	if l.perTenant > 0 && l.tenants[p.Tenant] >= l.perTenant {
		return &authError{http.StatusTooManyRequests, fmt.Sprintf("tenant %q already has %d connections, the most allowed", p.Tenant, l.perTenant)}
	}
	if l.perUser > 0 && l.users[[2]string{p.Tenant, p.Subject}] >= l.perUser {
		return &authError{http.StatusTooManyRequests, fmt.Sprintf("user %q already has %d connections, the most allowed", p.Subject, l.perUser)}
	}
	return nil
}

// reserve counts a connection of p, or says why it may not open.
func (l *connLimits) reserve(p *Principal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.full(p); err != nil {
		return err
	}
	l.tenants[p.Tenant]++
	l.users[[2]string{p.Tenant, p.Subject}]++
	return nil
}

// release uncounts a connection reserved for p.
func (l *connLimits) release(p *Principal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tenants[p.Tenant]--; l.tenants[p.Tenant] <= 0 {
		delete(l.tenants, p.Tenant)
	}
	user := [2]string{p.Tenant, p.Subject}
	if l.users[user]--; l.users[user] <= 0 {
		delete(l.users, user)
	}
}

// rateLimiter is a token bucket for one connection's invocations. It is used
// from the connection's reader only, so it needs no lock.
type rateLimiter struct {
	tokens float64
	last   time.Time
}

// allow takes one token if there is one; rate is tokens per second, burst the
// bucket size.
func (r *rateLimiter) allow(now time.Time, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	if r.last.IsZero() {
		r.tokens = float64(burst)
	} else {
		r.tokens = min(float64(burst), r.tokens+now.Sub(r.last).Seconds()*rate)
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}
