package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"notifyhub/server"
)

// The HTTP APIs answer refusals the same way: the status, the JSON error
// body, WWW-Authenticate on 401, and one count of notifyhub_rejected_total
// under the refusal's reason.
func TestRefusalsAnswerAndCount(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.RequireProvisioning = true })
	internal := env.srv.InternalURL() + "/internal/v1/tenants/"
	events := env.srv.HubURL() + "/events/"
	opsAdmin := env.token(server.TokenRequest{Subject: "ops", Scopes: []string{"events.admin"}, TTL: time.Hour}) // no tenant: any
	longTenant := strings.Repeat("x", 129)
	if s := env.status(http.MethodGet, events+"provision", env.adminToken("org_r"), ""); s != 200 {
		t.Fatalf("provision: %d", s)
	}
	hub := env.hubURL() + "/negotiate?negotiateVersion=1"
	tests := []struct {
		name, method, url, token string
		status                   int
		error, field             string // what the body's error contains; its field
		reason                   string // the notifyhub_rejected_total reason counted, "" for none
	}{
		{"publish without token", http.MethodPost, internal + "org_p/notifications", "", 401, "missing access token", "", "unauthenticated"},
		{"publish with a client token", http.MethodPost, internal + "org_p/notifications", env.clientToken("org_p"), 403, `lacks the "notifications.publish" scope`, "", "forbidden"},
		{"publish to an unprovisioned tenant", http.MethodPost, internal + "org_p/notifications", env.pub.Token, 404, "not provisioned", "", "not_provisioned"},
		{"publish to an invalid tenant id", http.MethodPost, internal + longTenant + "/notifications", env.pub.Token, 400, "tenantId must be", "tenantId", ""},
		{"webhooks without token", http.MethodGet, internal + "org_p/webhooks", "", 401, "missing access token", "", "unauthenticated"},
		{"webhooks with a publisher token", http.MethodGet, internal + "org_p/webhooks", env.pub.Token, 403, `lacks the "events.admin" scope`, "", "forbidden"},
		{"webhooks of another tenant", http.MethodGet, internal + "org_p/webhooks/wh_1", env.adminToken("org_q"), 403, `only publish to tenant "org_q"`, "", "forbidden"},
		{"webhook of an invalid tenant id", http.MethodGet, internal + longTenant + "/webhooks/wh_1/deliveries", opsAdmin, 400, "tenantId must be", "tenantId", ""},
		{"webhook for an unprovisioned tenant", http.MethodPost, internal + "org_p/webhooks", env.adminToken("org_p"), 404, "not provisioned", "", "not_provisioned"},
		{"connection token without token", http.MethodGet, events + "connection_token", "", 401, "missing access token", "", "unauthenticated"},
		{"connection token for an unprovisioned tenant", http.MethodGet, events + "connection_token", env.clientToken("org_p"), 403, "not provisioned", "", "not_provisioned"},
		{"provision without the admin scope", http.MethodPost, events + "provision", env.clientToken("org_p"), 403, `lacks the "events.admin" scope`, "", "forbidden"},
		{"subscription token for another tenant", http.MethodGet, events + "subscription_token?channel=shipments:org_q", env.clientToken("org_p"), 403, "another tenant", "", "forbidden"},
		{"hub negotiate without token", http.MethodPost, hub, "", 401, "missing access token", "", "unauthenticated"},
		{"hub negotiate for an unprovisioned tenant", http.MethodPost, hub, env.clientToken("org_p"), 403, "not provisioned", "", "not_provisioned"},
		{"stream negotiate without its site", http.MethodPost, env.srv.HubURL() + "/v1/hub/entries/negotiate?negotiateVersion=1", env.streamToken("org_r", "u", nil), 400, "site_id query parameter is required", "", "bad_request"},
		{"stream negotiate without a role", http.MethodPost, env.srv.HubURL() + "/v1/hub/entries/negotiate?negotiateVersion=1&site_id=s1", env.streamToken("org_r", "u", nil), 403, "site_admin", "", "forbidden"},
	}
	reasons := []string{"unauthenticated", "forbidden", "not_provisioned", "bad_request"}
	counts := func() map[string]float64 {
		m := map[string]float64{}
		for _, r := range reasons {
			m[r] = metricValue(t, env, `notifyhub_rejected_total{reason="`+r+`"}`)
		}
		return m
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counts()
			req, _ := http.NewRequestWithContext(context.Background(), tt.method, tt.url, strings.NewReader(`{"url":"https://x.example"}`))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Error, Field string }
			if err := decodeJSON(resp, &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || !strings.Contains(body.Error, tt.error) || body.Field != tt.field {
				t.Fatalf("%d %+v, want %d with an error containing %q and field %q", resp.StatusCode, body, tt.status, tt.error, tt.field)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), map[bool]string{true: "Bearer"}[tt.status == 401]; got != want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, want)
			}
			after := counts()
			for _, r := range reasons {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if d := after[r] - before[r]; d != want {
					t.Errorf("notifyhub_rejected_total{reason=%q} grew by %v, want %v", r, d, want)
				}
			}
		})
	}
}
