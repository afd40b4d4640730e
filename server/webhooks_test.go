package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server"
)

// fastWebhooks are short retry settings for tests (never timed assertions:
// they only make the tests finish quickly), with loopback targets allowed.
func fastWebhooks(c *server.Config) {
	c.WebhookAllowPrivate = true
	c.WebhookRetryBase = 20 * time.Millisecond
	c.WebhookRetryMax = 100 * time.Millisecond
	c.WebhookRetryPeriod = time.Minute
	c.WebhookTimeout = 5 * time.Second
}

// receiver is a webhook endpoint on 127.0.0.1 that records every request
// and answers with what respond returns.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []received
	respond  func(n int) int // status for the n-th request (0-based)
	arrived  chan struct{}
}

type received struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, respond func(n int) int) *receiver {
	r := &receiver{respond: respond, arrived: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := r.respond(len(r.requests))
		r.requests = append(r.requests, received{req.Header.Clone(), body, status})
		r.mu.Unlock()
		w.WriteHeader(status)
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setRespond(f func(int) int) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

// wait waits until n requests have arrived and returns them.
func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]received(nil), r.requests...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("%d webhook requests arrived, want %d", len(got), n)
		}
	}
}

func createWebhook(t *testing.T, env *hubEnv, tenant string, body map[string]any) string {
	t.Helper()
	status, out := call(t, http.MethodPost, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks", env.adminToken(tenant), body)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, out)
	}
	if s, _ := out["secret"].(string); !strings.HasPrefix(s, "whsec_") {
		t.Fatalf("create webhook: no secret in %v", out)
	}
	return out["id"].(string)
}

func getWebhook(t *testing.T, env *hubEnv, tenant, id string) map[string]any {
	t.Helper()
	status, out := call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks/"+id, env.adminToken(tenant), nil)
	if status != http.StatusOK {
		t.Fatalf("get webhook: %d %v", status, out)
	}
	return out
}

func deliveries(t *testing.T, env *hubEnv, tenant, id string) []map[string]any {
	t.Helper()
	status, out := call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks/"+id+"/deliveries", env.adminToken(tenant), nil)
	if status != http.StatusOK {
		t.Fatalf("deliveries: %d %v", status, out)
	}
	var ds []map[string]any
	for _, d := range out["deliveries"].([]any) {
		ds = append(ds, d.(map[string]any))
	}
	return ds
}

// eventually polls cond until it holds (a state reached asynchronously).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// payloadOf decodes a webhook body.
func payloadOf(t *testing.T, body []byte) (p struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Tenant string          `json:"tenantId"`
	Route  map[string]any  `json:"route"`
	Data   json.RawMessage `json:"data"`
}) {
	t.Helper()
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("webhook body %q: %v", body, err)
	}
	return p
}

// sameJSON asserts that got holds what was published: every key the
// publisher sent with the same value (the hub adds only null defaults).
func sameJSON(t *testing.T, got json.RawMessage, want map[string]any) {
	t.Helper()
	var g map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	w := map[string]any{}
	_ = json.Unmarshal([]byte(mustJSON(t, want)), &w)
	delete(w, "route") // routing, not part of the notification
	for k, v := range w {
		if !reflect.DeepEqual(g[k], v) {
			t.Errorf("webhook data.%s = %v, want %v", k, g[k], v)
		}
	}
}

func TestWebhookSignedInOrderAndFiltered(t *testing.T) {
	env := startHub(t, fastWebhooks)
	rcv := newReceiver(t, func(int) int { return http.StatusNoContent })
	const tenant = "org_w"
	id := createWebhook(t, env, tenant, map[string]any{
		"url": rcv.srv.URL + "/hooks", "events": []string{payloads.EventResourcesChanged}, "resources": []string{"tickets"},
		"description": "back office",
	})
	secret := getWebhook(t, env, tenant, id)["secret"].(string)

	var sent []map[string]any
	for _, r := range []string{"t1", "t2", "t3"} {
		n := resourceChanged("tickets", payloads.ActionCreated, r)
		sent = append(sent, n)
		// Not for this endpoint: another resource, another event.
		env.publish(tenant, []any{n, resourceChanged("devices", payloads.ActionCreated, "d-"+r), licence("l-" + r)})
	}
	reqs := rcv.wait(t, 3)
	seen := map[string]bool{}
	for i, req := range reqs {
		if err := notify.VerifyWebhook(secret, req.header, req.body, time.Minute, time.Now()); err != nil {
			t.Errorf("request %d: signature: %v", i, err)
		}
		if err := notify.VerifyWebhook(secret, req.header, append(req.body, ' '), time.Minute, time.Now()); err == nil {
			t.Errorf("request %d: a changed body verified", i)
		}
		if ct := req.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		p := payloadOf(t, req.body)
		if p.ID != req.header.Get("webhook-id") || seen[p.ID] || p.Type != payloads.EventResourcesChanged || p.Tenant != tenant {
			t.Errorf("request %d: id %q (header %q), type %q, tenant %q", i, p.ID, req.header.Get("webhook-id"), p.Type, p.Tenant)
		}
		seen[p.ID] = true
		sameJSON(t, p.Data, sent[i]) // in publish order
	}
	// The log shows them delivered, newest first.
	eventually(t, "three deliveries are logged", func() bool {
		ds := deliveries(t, env, tenant, id)
		return len(ds) == 3 && ds[0]["status"] != "pending"
	})
	for _, d := range deliveries(t, env, tenant, id) {
		if d["status"] != "delivered" || d["attempts"] != 1.0 || d["responseStatus"] != 204.0 {
			t.Errorf("delivery %v", d)
		}
	}
}

func TestWebhookRetriedUntilItSucceeds(t *testing.T) {
	env := startHub(t, fastWebhooks)
	// Fails three times (an error status, then a dropped connection), then succeeds.
	rcv := newReceiver(t, func(n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	const tenant = "org_r"
	id := createWebhook(t, env, tenant, map[string]any{"url": rcv.srv.URL})
	n := resourceChanged("tickets", payloads.ActionDeleted, "retry-me")
	n["route"] = map[string]any{"site": "s1", "users": []string{"u1"}}
	env.publish(tenant, n)
	reqs := rcv.wait(t, 4)
	first := reqs[0]
	for i, r := range reqs {
		if r.header.Get("webhook-id") != first.header.Get("webhook-id") || string(r.body) != string(first.body) {
			t.Fatalf("attempt %d differs from the first: id %q body %s", i, r.header.Get("webhook-id"), r.body)
		}
	}
	p := payloadOf(t, reqs[3].body)
	sameJSON(t, p.Data, n)
	if p.Route["site"] != "s1" || !reflect.DeepEqual(p.Route["users"], []any{"u1"}) {
		t.Errorf("route %v", p.Route)
	}
	eventually(t, "the delivery is logged as delivered", func() bool {
		ds := deliveries(t, env, tenant, id)
		return len(ds) == 1 && ds[0]["status"] == "delivered" && ds[0]["attempts"] == 4.0
	})
	if w := getWebhook(t, env, tenant, id); w["enabled"] != true {
		t.Fatalf("endpoint %v: want it enabled", w)
	}
	// No more attempts after the success.
	env.publish(tenant, licence("after"))
	if got := rcv.wait(t, 5); payloadOf(t, got[4].body).Type != payloads.EventLicenceActivated {
		t.Fatalf("fifth request is not the next notification")
	}
}

func TestWebhookDisabledWhenDownForTheRetryPeriod(t *testing.T) {
	env := startHub(t, fastWebhooks, func(c *server.Config) { c.WebhookRetryPeriod = 300 * time.Millisecond })
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close() // nothing listens there any more
	const tenant = "org_d"
	id := createWebhook(t, env, tenant, map[string]any{"url": url})
	env.publish(tenant, []any{licence("lost-1"), licence("lost-2")})
	eventually(t, "the endpoint is disabled", func() bool { return getWebhook(t, env, tenant, id)["enabled"] == false })
	w := getWebhook(t, env, tenant, id)
	if reason, _ := w["disabledReason"].(string); !strings.Contains(reason, "failed for 300ms") || w["disabledAt"] == nil {
		t.Fatalf("endpoint %v: want the reason recorded", w)
	}
	eventually(t, "both deliveries are logged as failed", func() bool {
		ds := deliveries(t, env, tenant, id)
		return len(ds) == 2 && ds[0]["status"] == "failed" && ds[1]["status"] == "failed"
	})
	ds := deliveries(t, env, tenant, id)
	if a, _ := ds[1]["attempts"].(float64); a < 2 || ds[1]["error"] == "" {
		t.Fatalf("first delivery %v: want retries and the last error", ds[1])
	}
	// A disabled endpoint gets nothing new queued; re-enabled, it does.
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	env.publish(tenant, licence("while-disabled"))
	status, out := call(t, http.MethodPatch, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks/"+id, env.adminToken(tenant),
		map[string]any{"enabled": true, "url": rcv.srv.URL})
	if status != http.StatusOK || out["enabled"] != true || out["disabledReason"] != nil {
		t.Fatalf("re-enable: %d %v", status, out)
	}
	env.publish(tenant, licence("after-enable"))
	if p := payloadOf(t, rcv.wait(t, 1)[0].body); !strings.Contains(string(p.Data), "after-enable") {
		t.Fatalf("first delivery after re-enabling: %s", p.Data)
	}
}

func TestWebhookPendingDeliveriesSurviveARestart(t *testing.T) {
	store := filepath.Join(t.TempDir(), "hub.db")
	withStore := func(c *server.Config) { c.StorePath = store }
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	const tenant = "org_s"

	first := startHub(t, fastWebhooks, withStore)
	id := createWebhook(t, first, tenant, map[string]any{"url": rcv.srv.URL})
	first.publish(tenant, []any{licence("survivor-1"), licence("survivor-2")})
	rcv.wait(t, 2) // failing: the first delivery is being retried
	if err := first.srv.Shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	rcv.mu.Lock()
	failedID := rcv.requests[0].header.Get("webhook-id")
	before := len(rcv.requests)
	rcv.mu.Unlock()

	rcv.setRespond(func(int) int { return http.StatusOK })
	second := startHub(t, fastWebhooks, withStore)
	reqs := rcv.wait(t, before+2)
	got := reqs[len(reqs)-2:]
	if got[0].header.Get("webhook-id") != failedID || !strings.Contains(string(got[0].body), "survivor-1") ||
		!strings.Contains(string(got[1].body), "survivor-2") {
		t.Fatalf("after the restart: %s then %s; want survivor-1 (same id %s) then survivor-2", got[0].body, got[1].body, failedID)
	}
	eventually(t, "both are logged as delivered", func() bool {
		ds := deliveries(t, second, tenant, id)
		return len(ds) == 2 && ds[0]["status"] == "delivered" && ds[1]["status"] == "delivered"
	})
}

func TestWebhookPrivateTargetsRefusedByDefault(t *testing.T) {
	env := startHub(t, fastWebhooks, func(c *server.Config) { c.WebhookAllowPrivate = false })
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	const tenant = "org_ssrf"
	if status, out := call(t, http.MethodPost, env.srv.InternalURL()+"/internal/v1/tenants/"+tenant+"/webhooks", env.adminToken(tenant),
		map[string]any{"url": rcv.srv.URL}); status != http.StatusBadRequest {
		t.Fatalf("a loopback address: %d %v, want 400", status, out)
	}
	// A name is checked on the address it resolves to, when dialled.
	id := createWebhook(t, env, tenant, map[string]any{"url": strings.Replace(rcv.srv.URL, "127.0.0.1", "localhost", 1)})
	env.publish(tenant, licence("internal"))
	eventually(t, "the attempt fails", func() bool {
		ds := deliveries(t, env, tenant, id)
		msg, _ := ds[0]["error"].(string)
		return len(ds) == 1 && strings.Contains(msg, "not a public address")
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.requests) != 0 {
		t.Fatal("a request reached a loopback target")
	}
}

func TestWebhookAPI(t *testing.T) {
	env := startHub(t)
	base := env.srv.InternalURL() + "/internal/v1/tenants/org_api/webhooks"
	admin := env.adminToken("org_api")
	for name, tc := range map[string]struct {
		token string
		body  any
		want  int
	}{
		"no token":             {"", map[string]any{"url": "https://x.example"}, http.StatusUnauthorized},
		"publisher scope":      {env.pub.Token, map[string]any{"url": "https://x.example"}, http.StatusForbidden},
		"other tenant":         {env.adminToken("org_other"), map[string]any{"url": "https://x.example"}, http.StatusForbidden},
		"no url":               {admin, map[string]any{}, http.StatusBadRequest},
		"relative url":         {admin, map[string]any{"url": "/hooks"}, http.StatusBadRequest},
		"ftp url":              {admin, map[string]any{"url": "ftp://x.example"}, http.StatusBadRequest},
		"unknown event":        {admin, map[string]any{"url": "https://x.example", "events": []string{"nope"}}, http.StatusBadRequest},
		"unknown key":          {admin, map[string]any{"url": "https://x.example", "evnts": []string{}}, http.StatusBadRequest},
		"bad secret":           {admin, map[string]any{"url": "https://x.example", "secret": "short"}, http.StatusBadRequest},
		"given secret":         {admin, map[string]any{"url": "https://x.example", "secret": notify.NewWebhookSecret()}, http.StatusCreated},
		"events and resources": {admin, map[string]any{"url": "https://x.example", "events": []string{payloads.EventResourcesChanged}, "resources": []string{"tickets"}}, http.StatusCreated},
	} {
		if status, out := call(t, http.MethodPost, base, tc.token, tc.body); status != tc.want {
			t.Errorf("%s: %d %v, want %d", name, status, out, tc.want)
		}
	}
	status, out := call(t, http.MethodGet, base, admin, nil)
	if status != http.StatusOK || len(out["webhooks"].([]any)) != 2 {
		t.Fatalf("list: %d %v", status, out)
	}
	for _, w := range out["webhooks"].([]any) {
		if _, ok := w.(map[string]any)["secret"]; ok {
			t.Fatal("a list shows secrets")
		}
	}
	id := out["webhooks"].([]any)[0].(map[string]any)["id"].(string)
	if status, _ := call(t, http.MethodGet, env.srv.InternalURL()+"/internal/v1/tenants/org_other/webhooks/"+id, env.adminToken("org_other"), nil); status != http.StatusNotFound {
		t.Errorf("another tenant's webhook: %d, want 404", status)
	}
	if status, _ := call(t, http.MethodPatch, base+"/"+id, admin, map[string]any{"url": "nope"}); status != http.StatusBadRequest {
		t.Errorf("patch bad url: %d", status)
	}
	if status, _ := call(t, http.MethodDelete, base+"/"+id, admin, nil); status != http.StatusNoContent {
		t.Errorf("delete: %d", status)
	}
	if status, _ := call(t, http.MethodDelete, base+"/"+id, admin, nil); status != http.StatusNotFound {
		t.Errorf("delete again: %d", status)
	}
	if status, _ := call(t, http.MethodGet, base+"/wh_unknown/deliveries", admin, nil); status != http.StatusNotFound {
		t.Errorf("deliveries of an unknown webhook: %d", status)
	}
}
