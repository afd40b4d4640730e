package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

// call sends a JSON request (body nil: none) and returns the status and
// the decoded JSON answer.
func call(t *testing.T, method, u, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b = []byte(mustJSON(t, body))
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON", method, u, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// userToken is an identity provider's token for user of tenant.
func (e *hubEnv) userToken(tenant, user string, scopes ...string) string {
	if len(scopes) == 0 {
		scopes = []string{"notifications.subscribe"}
	}
	return e.token(server.TokenRequest{Subject: user, Tenant: tenant, Scopes: scopes, TTL: time.Hour})
}

func (e *hubEnv) adminToken(tenant string) string {
	return e.userToken(tenant, "admin", "events.admin", "notifications.subscribe")
}

// exchange gets a hub token from an /events/ token route.
func (e *hubEnv) exchange(path, token string, body any) string {
	e.t.Helper()
	method := http.MethodGet
	status, out := call(e.t, method, e.srv.HubURL()+path, token, body)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %v", path, status, out)
	}
	tok, _ := out["token"].(string)
	if tok == "" {
		e.t.Fatalf("GET %s: no token in %v", path, out)
	}
	return tok
}

func invoke(t *testing.T, c *testclient.Client, method string, args ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Invoke(ctx, method, args...)
}

func TestConnectionTokenConnectsAsTheCaller(t *testing.T) {
	env := startHub(t)
	tok := env.exchange("/events/connection_token", env.userToken("acme", "alice"), nil)
	c := env.dial("", testclient.Options{Token: tok})
	env.subscribe(c, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated})
	env.publish("acme", licence("for-acme"))
	if got := ref(next(t, c)); got != "for-acme" {
		t.Fatalf("got %q", got)
	}

	// The hub's own tokens connect, but cannot be exchanged again (that
	// would make them live for ever) nor provision.
	for _, path := range []string{"/events/connection_token", "/events/subscription_token?channel=x:acme", "/events/provision"} {
		if status, out := call(t, http.MethodGet, env.srv.HubURL()+path, tok, nil); status != http.StatusForbidden {
			t.Errorf("GET %s with a hub-issued token: %d %v, want 403", path, status, out)
		}
	}
	cases := []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"bad token", "not-a-jwt", http.StatusUnauthorized},
		{"no tenant", env.token(server.TokenRequest{Subject: "x", Scopes: []string{"notifications.subscribe"}, TTL: time.Hour}), http.StatusForbidden},
		{"no client scope", env.userToken("acme", "alice", "other.scope"), http.StatusForbidden},
	}
	for _, tc := range cases {
		if status, _ := call(t, http.MethodGet, env.srv.HubURL()+"/events/connection_token", tc.token, nil); status != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.want)
		}
	}
}

func TestConnectionTokenNeverOutlivesTheCallersToken(t *testing.T) {
	env := startHub(t)
	short := env.token(server.TokenRequest{Subject: "alice", Tenant: "acme", Scopes: []string{"notifications.subscribe"}, TTL: time.Minute})
	status, out := call(t, http.MethodGet, env.srv.HubURL()+"/events/connection_token", short, nil)
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, out)
	}
	exp, err := time.Parse(time.RFC3339, out["expiresAt"].(string))
	if err != nil || exp.After(time.Now().Add(time.Minute+time.Second)) {
		t.Fatalf("expiresAt %v (%v): beyond the caller's token", out["expiresAt"], err)
	}
}

func TestSubscriptionTokenChannels(t *testing.T) {
	env := startHub(t)
	alice := env.userToken("org_a", "usr_alice")
	admin := env.adminToken("org_a")
	cases := []struct {
		name, token, channel string
		want                 int
	}{
		{"public channel of the tenant", alice, "shipments:org_a", http.StatusOK},
		{"own private channel", alice, "shipments:org_a#usr_alice", http.StatusOK},
		{"event channel", alice, "portos.licence.activated:org_a", http.StatusOK},
		{"another user's private channel", alice, "shipments:org_a#usr_bob", http.StatusForbidden},
		{"another tenant's channel", alice, "shipments:org_b", http.StatusForbidden},
		{"another tenant's private channel", alice, "shipments:org_b#usr_alice", http.StatusForbidden},
		{"admin, another user's private channel", admin, "shipments:org_a#usr_bob", http.StatusOK},
		{"malformed", alice, "shipments", http.StatusBadRequest},
		{"empty user", alice, "shipments:org_a#", http.StatusBadRequest},
	}
	for _, tc := range cases {
		// The document's form: a GET with a JSON body.
		status, out := call(t, http.MethodGet, env.srv.HubURL()+"/events/subscription_token", tc.token, map[string]string{"channel": tc.channel})
		if status != tc.want {
			t.Errorf("%s (body): %d %v, want %d", tc.name, status, out, tc.want)
		}
		if status == http.StatusOK && out["channel"] != tc.channel {
			t.Errorf("%s: channel %v", tc.name, out["channel"])
		}
		status, out = call(t, http.MethodGet, env.srv.HubURL()+"/events/subscription_token?channel="+url.QueryEscape(tc.channel), tc.token, nil)
		if status != tc.want {
			t.Errorf("%s (query): %d %v, want %d", tc.name, status, out, tc.want)
		}
	}
	if status, _ := call(t, http.MethodGet, env.srv.HubURL()+"/events/subscription_token", alice, nil); status != http.StatusBadRequest {
		t.Errorf("no channel: %d, want 400", status)
	}
}

func TestPrivateChannelReachesOnlyItsUser(t *testing.T) {
	env := startHub(t)
	const tenant = "org_x"
	connect := func(user string) *testclient.Client {
		return env.dial("", testclient.Options{Token: env.exchange("/events/connection_token", env.userToken(tenant, user), nil)})
	}
	alice, bob := connect("usr_alice"), connect("usr_bob")
	aliceChannel := "shipments:" + tenant + "#usr_alice"
	aliceSub := env.exchange("/events/subscription_token", env.userToken(tenant, "usr_alice"), map[string]string{"channel": aliceChannel})

	if err := invoke(t, alice, "SubscribeChannel", aliceChannel, aliceSub); err != nil {
		t.Fatalf("alice joins her channel: %v", err)
	}
	if err := invoke(t, bob, "SubscribeChannel", "shipments:"+tenant); err != nil {
		t.Fatalf("bob joins the public channel: %v", err)
	}
	// Bob cannot join Alice's channel: not without a token, not with hers,
	// not with a token of his own channel.
	bobSub := env.exchange("/events/subscription_token", env.userToken(tenant, "usr_bob"), map[string]string{"channel": "shipments:" + tenant + "#usr_bob"})
	for name, args := range map[string][]any{
		"no token":           {aliceChannel},
		"alice's token":      {aliceChannel, aliceSub},
		"his channel token":  {aliceChannel, bobSub},
		"a connection token": {aliceChannel, env.exchange("/events/connection_token", env.userToken(tenant, "usr_bob"), nil)},
	} {
		err := invoke(t, bob, "SubscribeChannel", args...)
		var ie *testclient.InvokeError
		if !errors.As(err, &ie) {
			t.Errorf("bob joins alice's channel with %s: %v, want a refusal", name, err)
		}
	}
	if err := invoke(t, bob, "SubscribeChannel", "shipments:org_other"); err == nil {
		t.Error("bob joined another tenant's channel")
	}

	shipment := func(ref string, route map[string]any) map[string]any {
		n := resourceChanged("shipments", payloads.ActionUpdated, ref)
		if route != nil {
			n["route"] = route
		}
		return n
	}
	env.publish(tenant, []any{
		shipment("private-alice", map[string]any{"users": []string{"usr_alice"}, "private": true}),
		shipment("private-bob", map[string]any{"users": []string{"usr_bob"}, "private": true}),
		shipment("public", nil),
	})
	if got := ref(next(t, alice)); got != "private-alice" {
		t.Fatalf("alice got %q first, want private-alice", got)
	}
	// Alice only joined her private channel: the public notification is not hers.
	if got := ref(next(t, bob)); got != "public" {
		t.Fatalf("bob got %q, want only the public notification", got)
	}

	// Leaving the channel stops it.
	if err := invoke(t, alice, "UnsubscribeChannel", aliceChannel); err != nil {
		t.Fatal(err)
	}
	if err := invoke(t, alice, "SubscribeChannel", "shipments:"+tenant); err != nil {
		t.Fatal(err)
	}
	env.publish(tenant, []any{shipment("private-alice-2", map[string]any{"users": []string{"usr_alice"}, "private": true}), shipment("public-2", nil)})
	if got := ref(next(t, alice)); got != "public-2" {
		t.Fatalf("alice got %q after leaving her channel, want public-2", got)
	}
}

func TestPublishRejectsPrivateWithoutUsers(t *testing.T) {
	env := startHub(t)
	n := resourceChanged("shipments", payloads.ActionCreated, "x")
	n["route"] = map[string]any{"private": true}
	res, err := env.pub.Publish(context.Background(), "acme", n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusBadRequest || res.Field != "route.private" {
		t.Fatalf("status %d field %q: %s", res.Status, res.Field, res.Error)
	}
}

func TestProvisioningGatesConnectionsAndDeprovisionClosesThem(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.RequireProvisioning = true })
	const tenant = "org_p"
	admin := env.adminToken(tenant)
	hub := env.srv.HubURL()

	// Not provisioned: no connection, no publish, no token, no webhook.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := testclient.Dial(ctx, env.hubURL(), testclient.Options{Token: env.clientToken(tenant)})
	var he *testclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("connect before provisioning: %v, want 403", err)
	}
	if res, _ := env.pub.Publish(ctx, tenant, licence("x")); res.Status != http.StatusNotFound {
		t.Fatalf("publish before provisioning: %d, want 404", res.Status)
	}
	if status, _ := call(t, http.MethodGet, hub+"/events/connection_token", env.clientToken(tenant), nil); status != http.StatusForbidden {
		t.Fatalf("connection token before provisioning: %d, want 403", status)
	}
	if status, _ := call(t, http.MethodGet, hub+"/events/provision", env.clientToken(tenant), nil); status != http.StatusForbidden {
		t.Fatalf("provision without the admin scope: %d, want 403", status)
	}

	status, out := call(t, http.MethodGet, hub+"/events/provision", admin, nil)
	if status != http.StatusOK || out["provisioned"] != true || out["created"] != true || out["tenantId"] != tenant {
		t.Fatalf("provision: %d %v", status, out)
	}
	if status, out = call(t, http.MethodPost, hub+"/events/provision", admin, nil); status != http.StatusOK || out["created"] != false {
		t.Fatalf("provision again: %d %v (want idempotent)", status, out)
	}

	c := env.dial(tenant, testclient.Options{})
	env.subscribe(c, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated})
	env.publish(tenant, licence("provisioned"))
	if got := ref(next(t, c)); got != "provisioned" {
		t.Fatalf("got %q", got)
	}
	wh := createWebhook(t, env, tenant, map[string]any{"url": "https://hooks.example.com/notifyhub"})
	status, out = call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks", env.adminToken(tenant), nil)
	if status != http.StatusOK || len(out["webhooks"].([]any)) != 1 {
		t.Fatalf("webhooks: %d %v", status, out)
	}

	status, out = call(t, http.MethodGet, hub+"/events/deprovision", admin, nil)
	if status != http.StatusOK || out["provisioned"] != false || out["webhooksDeleted"] != 1.0 || out["connectionsClosed"] != 1.0 {
		t.Fatalf("deprovision: %d %v", status, out)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open after deprovisioning")
	}
	if m := c.CloseMessage(); m == nil || m.AllowReconnect || !strings.Contains(m.Error, "deprovisioned") {
		t.Fatalf("close message %+v: want one without allowReconnect that says why", m)
	}
	status, out = call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks", env.adminToken(tenant), nil)
	if status != http.StatusNotFound && (status != http.StatusOK || len(out["webhooks"].([]any)) != 0) {
		t.Fatalf("webhooks after deprovisioning: %d %v, want none", status, out)
	}
	if status, _ = call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks/"+wh, env.adminToken(tenant), nil); status != http.StatusNotFound {
		t.Fatalf("deleted webhook: %d, want 404", status)
	}
	if _, err := testclient.Dial(ctx, env.hubURL(), testclient.Options{Token: env.clientToken(tenant)}); !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("connect after deprovisioning: %v, want 403", err)
	}
	if status, _ = call(t, http.MethodDelete, hub+"/events/provision", admin, nil); status != http.StatusOK {
		t.Fatalf("DELETE /events/provision again: %d, want 200 (idempotent)", status)
	}
}

func TestDeprovisionWithoutRequiredProvisioningStillCleansUp(t *testing.T) {
	env := startHub(t)
	const tenant = "org_q"
	c := env.dial(tenant, testclient.Options{})
	createWebhook(t, env, tenant, map[string]any{"url": "https://hooks.example.com/x"})
	status, out := call(t, http.MethodDelete, env.srv.HubURL()+"/events/provision", env.adminToken(tenant), nil)
	if status != http.StatusOK || out["webhooksDeleted"] != 1.0 {
		t.Fatalf("deprovision: %d %v", status, out)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open after deprovisioning")
	}
}

func TestConnectionTokenJoinsTheChannelsItsScopesGrant(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.ChannelScopes = []string{"shipments.read=shipments", "orders.read=orders"} })
	const tenant = "org_auto"
	tok := env.exchange("/events/connection_token", env.userToken(tenant, "usr_a", "notifications.subscribe", "shipments.read"), nil)
	c := env.dial("", testclient.Options{Token: tok}) // no Subscribe: the token's channels are joined
	private := func(resource, ref, user string) map[string]any {
		n := resourceChanged(resource, payloads.ActionCreated, ref)
		n["route"] = map[string]any{"users": []string{user}, "private": true}
		return n
	}
	env.publish(tenant, []any{
		resourceChanged("orders", payloads.ActionCreated, "orders-not-granted"),
		private("shipments", "someone-elses", "usr_b"),
		resourceChanged("shipments", payloads.ActionCreated, "public"),
		private("shipments", "mine", "usr_a"),
	})
	for _, want := range []string{"public", "mine"} {
		if got := ref(next(t, c)); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// Leaving a joined channel works like leaving one joined by hand.
	if err := invoke(t, c, "UnsubscribeChannel", "shipments:"+tenant); err != nil {
		t.Fatal(err)
	}
	env.publish(tenant, []any{resourceChanged("shipments", payloads.ActionCreated, "public-2"), private("shipments", "mine-2", "usr_a")})
	if got := ref(next(t, c)); got != "mine-2" {
		t.Fatalf("got %q after leaving the public channel, want mine-2", got)
	}
}

func TestChannelScopesConfigIsChecked(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	cfg.ChannelScopes = []string{"no-equals-sign"}
	if _, err := server.Start(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "HUB_CHANNEL_SCOPES") {
		t.Fatalf("start with a bad HUB_CHANNEL_SCOPES: %v", err)
	}
}

func TestConnectionTokensDoNotWorkOnTheInternalAPI(t *testing.T) {
	env := startHub(t)
	tok := env.exchange("/events/connection_token", env.userToken("acme", "svc", "notifications.subscribe", "notifications.publish", "events.admin"), nil)
	res, err := (&testclient.Publisher{BaseURL: env.srv.InternalURL(), Token: tok}).Publish(context.Background(), "acme", licence("x"))
	if err != nil || res.Status != http.StatusForbidden {
		t.Fatalf("publish with a connection token: %d %v, want 403", res.Status, err)
	}
	if status, _ := call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/acme/webhooks", tok, nil); status != http.StatusForbidden {
		t.Fatalf("webhooks API with a connection token: %d, want 403", status)
	}
}
