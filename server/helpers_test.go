package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

const testSecret = "test-secret-0123456789abcdef"

// hubEnv is a running hub on loopback with helpers to reach it.
type hubEnv struct {
	t   *testing.T
	srv *server.Server
	pub *testclient.Publisher
}

func startHub(t *testing.T, mutate ...func(*server.Config)) *hubEnv {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	cfg.StorePath = filepath.Join(t.TempDir(), "notifyhub.db") // never a file in the source tree
	for _, m := range mutate {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("start hub: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	env := &hubEnv{t: t, srv: srv}
	env.pub = &testclient.Publisher{BaseURL: srv.InternalURL(), Token: env.token(server.TokenRequest{Subject: "backend", Scopes: []string{cfg.PublishScope}, TTL: time.Hour})}
	return env
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (e *hubEnv) token(r server.TokenRequest) string {
	e.t.Helper()
	tok, err := server.MintToken(testSecret, r)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *hubEnv) clientToken(tenant string) string {
	return e.token(server.TokenRequest{Subject: "user-" + tenant, Tenant: tenant, Scopes: []string{"notifications.subscribe"}, TTL: time.Hour})
}

func (e *hubEnv) hubURL() string { return e.srv.HubURL() + server.HubPath }

// dial connects a client of tenant with opts (Token filled in if empty).
func (e *hubEnv) dial(tenant string, opts testclient.Options) *testclient.Client {
	e.t.Helper()
	if opts.Token == "" {
		opts.Token = e.clientToken(tenant)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, e.hubURL(), opts)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func (e *hubEnv) subscribe(c *testclient.Client, req payloads.SubscriptionRequest) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Subscribe(ctx, req); err != nil {
		e.t.Fatalf("subscribe %+v: %v", req, err)
	}
}

// publish posts body for tenant and requires a 202.
func (e *hubEnv) publish(tenant string, body any) {
	e.t.Helper()
	res, err := e.pub.Publish(context.Background(), tenant, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Status != 202 {
		e.t.Fatalf("publish: status %d: %s (%s)", res.Status, res.Error, res.Field)
	}
}

// next returns the next notification received by c, decoded to a map.
func next(t *testing.T, c *testclient.Client) map[string]any {
	t.Helper()
	select {
	case ev := <-c.Events():
		var m map[string]any
		if err := ev.Decode(&m); err != nil {
			t.Fatalf("decode event: %v", err)
		}
		return m
	case <-c.Done():
		t.Fatalf("connection closed while waiting for an event")
	case <-time.After(5 * time.Second):
		t.Fatalf("no event within 5s")
	}
	return nil
}

// resourceChanged builds a portos.resources.changed notification.
func resourceChanged(resource string, action payloads.Action, id string) map[string]any {
	return map[string]any{
		"e": payloads.EventResourcesChanged,
		"s": map[string]any{"c": "conn-1", "u": map[string]any{"u": "SYSTEM", "d": "SYSTEM", "f": nil}},
		"r": id,
		"p": map[string]any{
			"u": map[string]any{"u": "999", "d": "BackOffice", "f": nil},
			"n": resource, "a": int(action),
			"i": map[string]any{"i": id, "n": resource, "v": 7},
			"r": []any{map[string]any{"id": id, "total": 12.5}},
		},
	}
}

func licence(ref string) map[string]any {
	return map[string]any{"e": payloads.EventLicenceActivated, "r": ref, "p": map[string]any{"licence": ref}}
}

// ref returns the "r" (reference id) of a received notification.
func ref(m map[string]any) string { s, _ := m["r"].(string); return s }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// httpDo sends one request to the hub with token as its bearer and header
// (name, value pairs); ctx bounds it. The caller closes the body.
func (e *hubEnv) httpDo(ctx context.Context, method, url, token, body string, header ...string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// status sends one request and returns its status code.
func (e *hubEnv) status(method, url, token, body string) int {
	e.t.Helper()
	resp := e.httpDo(context.Background(), method, url, token, body)
	resp.Body.Close()
	return resp.StatusCode
}

// negotiate negotiates a connection as token's user and returns its
// connection token.
func (e *hubEnv) negotiate(token string) string {
	e.t.Helper()
	resp := e.httpDo(context.Background(), http.MethodPost, e.hubURL()+"/negotiate?negotiateVersion=1", token, "")
	var neg struct{ ConnectionToken string }
	if err := decodeJSON(resp, &neg); err != nil {
		e.t.Fatal(err)
	}
	return neg.ConnectionToken
}
