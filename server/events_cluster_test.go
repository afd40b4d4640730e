package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"notifyhub/notify/redistest"
	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

// Two nodes sharing one Redis share the state: a tenant provisioned on one
// is served by the other, deprovisioning on one closes the connections of
// the other, a connection token of one connects to the other, and a
// webhook is sent once, however many nodes run dispatchers.
func TestClusterSharesTenantsTokensAndWebhooks(t *testing.T) {
	redis := redistest.Start(t)
	shared := func(c *server.Config) { c.RedisURL = redis.URL(); c.RequireProvisioning = true }
	a := startHub(t, fastWebhooks, shared)
	b := startHub(t, fastWebhooks, shared)
	for _, n := range []*hubEnv{a, b} {
		n.waitReadyz(http.StatusOK)
	}
	const tenant = "org_c"
	if status, out := call(t, http.MethodGet, a.srv.HubURL()+"/events/provision", a.adminToken(tenant), nil); status != http.StatusOK {
		t.Fatalf("provision on A: %d %v", status, out)
	}

	// A's connection token connects to B.
	tok := a.exchange("/events/connection_token", a.userToken(tenant, "usr_1"), nil)
	onB := b.dial("", testclient.Options{Token: tok})
	b.subscribe(onB, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated})

	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	id := createWebhook(t, b, tenant, map[string]any{"url": rcv.srv.URL})
	for i := range 5 {
		a.publish(tenant, licence("n"+string(rune('0'+i))))
	}
	if got := ref(next(t, onB)); got != "n0" {
		t.Fatalf("B's connection got %q", got)
	}
	reqs := rcv.wait(t, 5)
	eventually(t, "A logs five deliveries", func() bool {
		ds := deliveries(t, a, tenant, id)
		return len(ds) == 5 && ds[0]["status"] == "delivered"
	})
	for i, r := range rcv.wait(t, len(reqs)) {
		if !strings.Contains(string(r.body), `"n`+string(rune('0'+i))+`"`) {
			t.Fatalf("request %d out of order: %s", i, r.body)
		}
	}

	// Deprovisioning on A closes B's connection and refuses new ones on B.
	if status, out := call(t, http.MethodGet, a.srv.HubURL()+"/events/deprovision", a.adminToken(tenant), nil); status != http.StatusOK || out["webhooksDeleted"] != 1.0 {
		t.Fatalf("deprovision on A: %d %v", status, out)
	}
	select {
	case <-onB.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("B's connection is still open after deprovisioning on A")
	}
	if m := onB.CloseMessage(); m == nil || m.AllowReconnect {
		t.Fatalf("close message %+v: want one without allowReconnect", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var he *testclient.HTTPError
	if _, err := testclient.Dial(ctx, b.hubURL(), testclient.Options{Token: b.clientToken(tenant)}); !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("connect to B after deprovisioning: %v, want 403", err)
	}
	// Exactly five requests: no node sent a delivery twice.
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.requests) != 5 {
		t.Fatalf("%d webhook requests, want 5", len(rcv.requests))
	}
}
