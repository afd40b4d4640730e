package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"notifyhub/server"
	"notifyhub/server/signalr"
	"notifyhub/testclient"
)

// streamToken mints a token with the Salto scope and site roles.
func (e *hubEnv) streamToken(tenant, user string, roles map[string]any) string {
	e.t.Helper()
	claims := jwt.MapClaims{"sub": user, "tenant_id": tenant, "scope": "user_api.full_access notifications.subscribe",
		"exp": time.Now().Add(time.Hour).Unix(), "site_roles": roles}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// sample connects as the Salto and Clay samples do: skipNegotiation, JSON.
var sample = testclient.Options{SkipNegotiation: true}

// dialStream connects to a stream endpoint and listens for ReceiveMessage.
func (e *hubEnv) dialStream(path, token string, opts testclient.Options) (*testclient.Client, error) {
	opts.Token, opts.Method = token, "ReceiveMessage"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, e.srv.HubURL()+path, opts)
	if err == nil {
		e.t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// entry builds an access event routed to a site and users.
func entry(event, ref, site string, users ...string) map[string]any {
	route := map[string]any{"site": site}
	if len(users) > 0 {
		route["users"] = users
	}
	return map[string]any{"e": event, "r": ref, "p": map[string]any{"door": "main", "ref": ref}, "route": route}
}

// nextMessage returns the ref of the next ReceiveMessage, whose one argument
// is the notification as a JSON string.
func nextMessage(t *testing.T, c *testclient.Client) string {
	t.Helper()
	select {
	case ev := <-c.Events():
		var s string
		if err := ev.Decode(&s); err != nil {
			t.Fatalf("ReceiveMessage argument is not a string: %v", err)
		}
		var m map[string]any
		if err := jsonUnmarshal([]byte(s), &m); err != nil {
			t.Fatalf("ReceiveMessage string is not JSON: %v: %q", err, s)
		}
		if _, leaked := m["route"]; leaked {
			t.Fatalf("routing data sent to the client: %s", s)
		}
		return ref(m)
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return ""
}

func TestStreamEndpoints(t *testing.T) {
	env := startHub(t)
	admin := env.streamToken("t1", "admin", map[string]any{"s1": "site_admin", "s2": "site_user"})
	superUser := env.streamToken("t1", "boss", map[string]any{"s1": []string{"site_super_user"}})
	alice := env.streamToken("t1", "alice", map[string]any{"s1": "site_user"})
	otherTenant := env.streamToken("t2", "admin", map[string]any{"s1": "site_admin"})

	mustDial := func(path, tok string, opts testclient.Options) *testclient.Client {
		t.Helper()
		c, err := env.dialStream(path, tok, opts)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return c
	}
	siteEntries := mustDial("/v1/hub/entries?site_id=s1", admin, sample)
	superEntries := mustDial("/v1/hub/entries?site_id=s1", superUser, testclient.Options{Protocol: signalr.MessagePackProtocol{}})
	aliceEntries := mustDial("/v1/hub/entries?site_id=s1&user_id=alice", alice, sample)
	siteIncidents := mustDial("/v1/hub/incidents?site_id=s1", admin, sample)
	clayAll := mustDial("/hub/entry", env.streamToken("t1", "ops", map[string]any{server.AllSites: "site_super_user"}), sample)
	clayS2 := mustDial("/hub/entry?collectionId=s2", env.streamToken("t1", "s2admin", map[string]any{"s2": "site_admin"}), sample)
	foreign := mustDial("/v1/hub/entries?site_id=s1", otherTenant, sample)

	env.publish("t1", []any{
		entry(server.EventAccessEntry, "s1-alice", "s1", "alice"),
		entry(server.EventAccessEntry, "s1-bob", "s1", "bob"),
		entry(server.EventAccessEntry, "s2-alice", "s2", "alice"),
		entry(server.EventAccessIncident, "s1-incident", "s1"),
	})
	env.publish("t2", entry(server.EventAccessEntry, "t2-s1", "s1"))

	expect := map[string]struct {
		c    *testclient.Client
		want []string
	}{
		"salto site entries":      {siteEntries, []string{"s1-alice", "s1-bob"}},
		"salto entries (msgpack)": {superEntries, []string{"s1-alice", "s1-bob"}},
		"salto user entries":      {aliceEntries, []string{"s1-alice"}},
		"salto incidents":         {siteIncidents, []string{"s1-incident"}},
		"clay all entries":        {clayAll, []string{"s1-alice", "s1-bob", "s2-alice"}},
		"clay collection entries": {clayS2, []string{"s2-alice"}},
		"other tenant":            {foreign, []string{"t2-s1"}},
	}
	// A sentinel routed everywhere ends each stream's expected sequence.
	env.publish("t1", []any{entry(server.EventAccessEntry, "end", "s1", "alice"), entry(server.EventAccessEntry, "end", "s2"), entry(server.EventAccessIncident, "end", "s1")})
	env.publish("t2", entry(server.EventAccessEntry, "end", "s1"))
	for name, x := range expect {
		var got []string
		for {
			r := nextMessage(t, x.c)
			if r == "end" {
				break
			}
			got = append(got, r)
		}
		if fmt.Sprint(got) != fmt.Sprint(x.want) {
			t.Errorf("%s received %v, want %v", name, got, x.want)
		}
	}
	// The stream cannot be widened: it has no hub methods.
	if err := siteEntries.Invoke(context.Background(), "Subscribe", map[string]any{"e": server.EventAccessEntry}); err == nil {
		t.Error("Subscribe on a stream endpoint succeeded")
	}
}

func TestStreamAuthorization(t *testing.T) {
	env := startHub(t)
	alice := env.streamToken("t1", "alice", map[string]any{"s1": "site_user"})
	admin := env.streamToken("t1", "admin", map[string]any{"s1": "site_admin"})
	noScope := env.clientToken("t1")
	tests := []struct {
		name, path, token string
		status            int
	}{
		{"site user on the site stream", "/v1/hub/entries?site_id=s1", alice, 403},
		{"site user on another user's stream", "/v1/hub/entries?site_id=s1&user_id=bob", alice, 403},
		{"site user on own stream at another site", "/v1/hub/entries?site_id=s2&user_id=alice", alice, 403},
		{"admin of s1 on site s2", "/v1/hub/incidents?site_id=s2", admin, 403},
		{"missing site_id", "/v1/hub/entries", admin, 400},
		{"missing site_id with user", "/v1/hub/entries?user_id=alice", alice, 400},
		{"token without the Salto scope", "/v1/hub/entries?site_id=s1", noScope, 403},
		{"no token", "/v1/hub/entries?site_id=s1", "", 401},
		{"garbage token", "/hub/entry", "x.y.z", 401},
		{"clay: all collections without the all-sites role", "/hub/entry", admin, 403},
		{"clay: a collection as its site user", "/hub/incident?collectionId=s1", alice, 403},
		{"clay: another site's collection", "/hub/entry?collectionId=s2", admin, 403},
		{"clay: a collection named *", "/hub/entry?collectionId=*", admin, 400},
	}
	for _, tt := range tests {
		for _, skip := range []bool{true, false} {
			_, err := env.dialStream(tt.path, tt.token, testclient.Options{SkipNegotiation: skip})
			var he *testclient.HTTPError
			if !errors.As(err, &he) || he.StatusCode != tt.status {
				t.Errorf("%s (skipNegotiation=%v): %v, want HTTP %d", tt.name, skip, err, tt.status)
			}
		}
	}
	if _, err := env.dialStream("/v1/hub/entries?site_id=s1&user_id=alice", alice, sample); err != nil {
		t.Errorf("site user on own stream: %v", err)
	}
	if _, err := env.dialStream("/v1/hub/entries?site_id=s1&user_id=alice", admin, sample); err != nil {
		t.Errorf("admin on a user stream: %v", err)
	}
	// Site ids follow the publish format's name rule, which allows '/'.
	if _, err := env.dialStream("/v1/hub/entries?site_id=eu%2Fs1", env.streamToken("t1", "eu", map[string]any{"eu/s1": "site_admin"}), sample); err != nil {
		t.Errorf("a site id with a slash: %v", err)
	}
	everywhere := env.streamToken("t1", "ops", map[string]any{server.AllSites: "site_super_user"})
	for _, path := range []string{"/v1/hub/entries?site_id=s9", "/hub/entry", "/hub/incident?collectionId=s1"} {
		if _, err := env.dialStream(path, everywhere, sample); err != nil {
			t.Errorf("super user of every site on %s: %v", path, err)
		}
	}
}

// TestGatedEvents: the events the stream endpoints serve by site role cannot
// be had tenant-wide through the main hub, its channels, or a stream endpoint
// configured without roles.
func TestGatedEvents(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	ctx := context.Background()
	refusals := []struct {
		method string
		args   []any
	}{
		{"Subscribe", []any{map[string]any{"e": server.EventAccessEntry}}},
		{"Subscribe", []any{map[string]any{"e": server.EventAccessIncident}}},
		{"SubscribeChannel", []any{server.EventAccessEntry + ":t1"}},
	}
	for _, r := range refusals {
		err := c.Invoke(ctx, r.method, r.args...)
		if err == nil || !strings.Contains(err.Error(), "site roles") {
			t.Errorf("%s%v: %v, want a refusal naming the site roles", r.method, r.args, err)
		}
	}
	for _, ch := range []string{server.EventAccessEntry + ":t1", server.EventAccessEntry + ":t1#user-t1"} {
		status, out := call(t, http.MethodGet, env.srv.HubURL()+"/events/subscription_token", env.clientToken("t1"), map[string]string{"channel": ch})
		if status != http.StatusForbidden {
			t.Errorf("subscription token for %s: %d %v, want 403", ch, status, out)
		}
	}
	env.subscribe(c, licences) // the connection is still served
	env.publish("t1", []any{entry(server.EventAccessEntry, "gated", "s1"), licence("open")})
	if got := ref(next(t, c)); got != "open" {
		t.Fatalf("received %q, want only the licence", got)
	}

	file := filepath.Join(t.TempDir(), "streams.json")
	if err := os.WriteFile(file, []byte(`[{"name":"all-entries","path":"/all","events":["access.entry"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	configs := []struct {
		name, want string
		mutate     func(*server.Config)
	}{
		{"a stream serving a gated event without roles", "siteRoles", func(c *server.Config) {
			c.StreamsFile, c.Streams = file, append(c.Streams, "all-entries")
		}},
		{"a scope granting a gated event's channel", "site roles", func(c *server.Config) {
			c.ChannelScopes = []string{"entries.read=" + server.EventAccessEntry}
		}},
	}
	for _, tt := range configs {
		cfg := server.DefaultConfig()
		cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
		cfg.StorePath = filepath.Join(t.TempDir(), "notifyhub.db")
		tt.mutate(&cfg)
		if srv, err := server.Start(ctx, cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tt.want) {
			if srv != nil {
				_ = srv.Shutdown(ctx)
			}
			t.Errorf("%s: %v, want a configuration error naming %s", tt.name, err, tt.want)
		}
	}
}

func TestStreamsCanBeSwitchedOff(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.Streams = []string{"clay-entry"} })
	if _, err := env.dialStream("/hub/entry", env.streamToken("t1", "ops", map[string]any{server.AllSites: "site_admin"}), sample); err != nil {
		t.Fatalf("enabled stream: %v", err)
	}
	_, err := env.dialStream("/v1/hub/entries?site_id=s1", env.streamToken("t1", "a", map[string]any{"s1": "site_admin"}), sample)
	var he *testclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("disabled stream: %v, want 404", err)
	}
}

// TestStreamFilterOutlivesRequests: a negotiated stream connection keeps the
// site its negotiate named, however many requests the hub serves after it on
// the same keep-alive connections (fasthttp reuses request buffers; the
// filter must not alias them). Long polling, because its requests end.
func TestStreamFilterOutlivesRequests(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.PollTimeout = 200 * time.Millisecond })
	tok := env.streamToken("t1", "ops", map[string]any{server.AllSites: "site_admin"})
	negotiate := func(site string) string {
		resp := env.httpDo(context.Background(), http.MethodPost, env.srv.HubURL()+"/hub/entry/negotiate?negotiateVersion=1&collectionId="+site, tok, "")
		var neg struct{ ConnectionToken string }
		if err := decodeJSON(resp, &neg); err != nil {
			t.Fatal(err)
		}
		return neg.ConnectionToken
	}
	id := negotiate("AAAA")
	for range 50 {
		negotiate("BBBB")
	}
	url := env.srv.HubURL() + "/hub/entry?collectionId=AAAA&id=" + id
	env.httpDo(context.Background(), http.MethodGet, url, tok, "").Body.Close() // the first poll starts the transport
	if code := env.status(http.MethodPost, url, tok, "{\"protocol\":\"json\",\"version\":1}\x1e"); code != 200 {
		t.Fatalf("handshake: %d", code)
	}
	for range 50 {
		negotiate("BBBB")
	}
	env.publish("t1", []any{entry(server.EventAccessEntry, "b", "BBBB"), entry(server.EventAccessEntry, "a", "AAAA")})
	var got string
	for range 5 {
		resp := env.httpDo(context.Background(), http.MethodGet, url, tok, "")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got += string(b); strings.Contains(got, `\"r\":\"a\"`) {
			break
		}
	}
	if !strings.Contains(got, `\"r\":\"a\"`) || strings.Contains(got, `\"r\":\"b\"`) {
		t.Fatalf("received %q; want the entry of its own site (a) only", got)
	}
	env.httpDo(context.Background(), http.MethodDelete, url, tok, "").Body.Close()
}
