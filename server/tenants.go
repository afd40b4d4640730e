package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"notifyhub/server/signalr"
)

// closeDeprovisioned is the Close message's error for the connections of a
// deprovisioned tenant; it comes without allowReconnect, so that clients do
// not reconnect.
const closeDeprovisioned = "Connection closed with an error. The tenant was deprovisioned."

// tenantConns keeps this node's connections by tenant, so that a
// deprovisioned tenant's connections can be closed.
type tenantConns struct {
	mu    sync.Mutex
	conns map[string]map[*signalr.Conn]struct{}
	// closedAt remembers when each tenant was last deprovisioned, so that a
	// connection authenticated just before (its handshake still under way)
	// is refused when it attaches. Entries older than a connection can take
	// to attach are pruned.
	closedAt map[string]time.Time
}

// attachWindow bounds the time from a connect request's authentication to
// its attach (negotiate, then the transport and handshake).
const attachWindow = 2 * time.Minute

func newTenantConns() *tenantConns {
	return &tenantConns{conns: map[string]map[*signalr.Conn]struct{}{}, closedAt: map[string]time.Time{}}
}

var errDeprovisioned = &authError{http.StatusForbidden, "the tenant was deprovisioned"}

// add registers c of tenant, authenticated at authAt; it fails if the tenant
// was deprovisioned since.
func (t *tenantConns) add(tenant string, c *signalr.Conn, authAt time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.closedAt[tenant]; ok && !authAt.After(at) {
		return errDeprovisioned
	}
	m := t.conns[tenant]
	if m == nil {
		m = map[*signalr.Conn]struct{}{}
		t.conns[tenant] = m
	}
	m[c] = struct{}{}
	return nil
}

// remove unregisters c; it may be called for a connection never added.
func (t *tenantConns) remove(tenant string, c *signalr.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.conns[tenant]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(t.conns, tenant)
		}
	}
}

// closeTenant closes every connection of tenant on this node with a Close
// message that does not allow reconnecting, and returns how many there were.
func (t *tenantConns) closeTenant(tenant string, now time.Time) int {
	t.mu.Lock()
	for name, at := range t.closedAt {
		if now.Sub(at) > attachWindow {
			delete(t.closedAt, name)
		}
	}
	t.closedAt[tenant] = now
	conns := make([]*signalr.Conn, 0, len(t.conns[tenant]))
	for c := range t.conns[tenant] {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close(closeDeprovisioned, false)
	}
	return len(conns)
}

// checkProvisioned answers a connect or publish for tenant: nil when
// provisioning is not required or the tenant is provisioned; a 403 (connect)
// or 404 (publish) error otherwise; 503 when the store cannot tell.
func (s *Server) checkProvisioned(ctx context.Context, tenant string, status int) error {
	if !s.cfg.RequireProvisioning {
		return nil
	}
	_, ok, err := s.store.Tenant(ctx, tenant)
	if err != nil {
		s.log.Error("store: read tenant", "tenant", tenant, "err", err)
		return &authError{http.StatusServiceUnavailable, "the hub cannot read its store; try again"}
	}
	if !ok {
		return &authError{status, "the tenant is not provisioned for event streaming (GET /events/provision)"}
	}
	return nil
}

// deprovisioned closes a tenant's connections on this node and stops the
// deliveries of its deleted webhooks.
func (s *Server) deprovisioned(tenant string) {
	if n := s.tenants.closeTenant(tenant, time.Now()); n > 0 {
		s.log.Info("closed the connections of a deprovisioned tenant", "tenant", tenant, "connections", n)
	}
}

// watchDeprovisioned closes, on this node, the connections of tenants
// deprovisioned on other nodes (shared stores only). It retries until ctx
// ends.
func (s *Server) watchDeprovisioned(ctx context.Context, w interface {
	WatchDeprovisioned(context.Context, func(string)) error
}) {
	for ctx.Err() == nil {
		err := w.WatchDeprovisioned(ctx, s.deprovisioned)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("store: deprovisioning watch ended; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
