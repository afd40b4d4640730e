package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"notifyhub/server"
	"notifyhub/testclient"
)

func TestClientAuth(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.JWTIssuer = "https://id.example"; c.JWTAudience = "notifyhub" })
	good := jwt.MapClaims{"sub": "u", "tenant_id": "t1", "scope": "openid notifications.subscribe", "iss": "https://id.example", "aud": "notifyhub", "exp": time.Now().Add(time.Hour).Unix()}
	sign := func(c jwt.MapClaims, key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noneAlg, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"valid", sign(good, testSecret), 0},
		{"scope as array", sign(with("scope", []string{"notifications.subscribe"}), testSecret), 0},
		{"missing", "", 401},
		{"garbage", "not.a.jwt", 401},
		{"wrong key", sign(good, "another-secret-0123456789"), 401},
		{"alg none", noneAlg, 401},
		{"expired", sign(with("exp", time.Now().Add(-time.Minute).Unix()), testSecret), 401},
		{"not yet valid", sign(with("nbf", time.Now().Add(time.Hour).Unix()), testSecret), 401},
		{"nbf within the clock skew", sign(with("nbf", time.Now().Add(10*time.Second).Unix()), testSecret), 0},
		{"no exp", sign(with("exp", nil), testSecret), 401},
		{"wrong issuer", sign(with("iss", "https://evil.example"), testSecret), 401},
		{"wrong audience", sign(with("aud", "other"), testSecret), 401},
		{"no scope", sign(with("scope", nil), testSecret), 403},
		{"other scope", sign(with("scope", "notifications.publish"), testSecret), 403},
		{"no tenant", sign(with("tenant_id", nil), testSecret), 403},
	}
	for _, tt := range tests {
		for _, skip := range []bool{false, true} {
			for _, inQuery := range []bool{false, true} {
				opts := testclient.Options{Token: tt.token, SkipNegotiation: skip, TokenInQuery: inQuery}
				c, err := testclient.Dial(context.Background(), env.hubURL(), opts)
				if tt.status == 0 {
					if err != nil {
						t.Errorf("%s (skip=%v query=%v): %v", tt.name, skip, inQuery, err)
						continue
					}
					c.Close()
					continue
				}
				var he *testclient.HTTPError
				if !errors.As(err, &he) || he.StatusCode != tt.status {
					t.Errorf("%s (skip=%v query=%v): got %v, want HTTP %d", tt.name, skip, inQuery, err, tt.status)
				}
				if c != nil {
					c.Close()
				}
			}
		}
	}
}

// A token without exp would never expire: every route that takes the
// identity provider's token refuses it with 401 and says why.
func TestTokenWithoutExpIsRefused(t *testing.T) {
	env := startHub(t)
	noExp := func(tenant string, scopes ...string) string {
		return env.token(server.TokenRequest{Subject: "u", Tenant: tenant, Scopes: scopes}) // TTL 0: no exp
	}
	tests := []struct {
		name, method, url, token string
	}{
		{"negotiate", http.MethodPost, env.hubURL() + "/negotiate?negotiateVersion=1", noExp("t1", "notifications.subscribe")},
		{"publish", http.MethodPost, env.srv.InternalURL() + "/internal/v1/tenants/t1/notifications", noExp("", "notifications.publish")},
		{"webhooks API", http.MethodGet, env.srv.InternalURL() + "/internal/v1/tenants/t1/webhooks", noExp("t1", "events.admin")},
		{"connection token", http.MethodGet, env.srv.HubURL() + "/events/connection_token", noExp("t1", "notifications.subscribe")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.httpDo(context.Background(), tt.method, tt.url, tt.token, mustJSON(t, licence("x")), "Content-Type", "application/json")
			var body struct{ Error string }
			if err := decodeJSON(resp, &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body.Error, "no exp claim") {
				t.Fatalf("%d %q, want 401 saying the token has no exp claim", resp.StatusCode, body.Error)
			}
			if resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("WWW-Authenticate %q, want Bearer", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// A tenant_id that is not a valid tenant id (it would name Redis channels
// and store keys, e.g. the store's "/control") is refused with 401 wherever
// a token is taken.
func TestInvalidTenantInTokenIsRefused(t *testing.T) {
	env := startHub(t)
	tok := func(tenant string, scopes ...string) string {
		return env.token(server.TokenRequest{Subject: "u", Tenant: tenant, Scopes: scopes, TTL: time.Hour})
	}
	routes := []struct {
		name, method, url string
		scopes            []string
	}{
		{"negotiate", http.MethodPost, env.hubURL() + "/negotiate?negotiateVersion=1", []string{"notifications.subscribe"}},
		{"publish", http.MethodPost, env.srv.InternalURL() + "/internal/v1/tenants/t1/notifications", []string{"notifications.publish"}},
		{"webhooks API", http.MethodGet, env.srv.InternalURL() + "/internal/v1/tenants/t1/webhooks", []string{"events.admin"}},
		{"connection token", http.MethodGet, env.srv.HubURL() + "/events/connection_token", []string{"notifications.subscribe"}},
		{"provision", http.MethodPost, env.srv.HubURL() + "/events/provision", []string{"events.admin"}},
	}
	for _, tenant := range []string{"/control", "a b", "tab\t", "é", strings.Repeat("x", 129)} {
		for _, r := range routes {
			resp := env.httpDo(context.Background(), r.method, r.url, tok(tenant, r.scopes...), mustJSON(t, licence("x")), "Content-Type", "application/json")
			var body struct{ Error string }
			if err := decodeJSON(resp, &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body.Error, "invalid tenant_id claim") {
				t.Errorf("%s with tenant_id %q: %d %q, want 401 naming the tenant_id claim", r.name, tenant, resp.StatusCode, body.Error)
			}
		}
	}
	// The same routes take a valid tenant (the refusal is the tenant's).
	for _, r := range routes {
		if st := env.status(r.method, r.url, tok("t1", r.scopes...), mustJSON(t, licence("x"))); st >= 400 {
			t.Errorf("%s with tenant_id t1: %d", r.name, st)
		}
	}
}

func TestNegotiatedConnectionBelongsToItsUser(t *testing.T) {
	env := startHub(t)
	// Negotiate as one user, then try to connect the WebSocket as another.
	id := env.negotiate(env.clientToken("t1"))
	_, err := testclient.Dial(context.Background(), env.hubURL()+"?id="+id,
		testclient.Options{Token: env.clientToken("t2"), SkipNegotiation: true})
	var he *testclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 403 {
		t.Fatalf("hijack attempt: %v, want 403", err)
	}
	_, err = testclient.Dial(context.Background(), env.hubURL()+"?id=unknown-token",
		testclient.Options{Token: env.clientToken("t1"), SkipNegotiation: true})
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("unknown id: %v, want 404", err)
	}
}

func TestPublicKeyAlgorithms(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := startHub(t, func(c *server.Config) { c.JWTSecret = ""; c.JWTPublicKeyFile = file })
	claims := jwt.MapClaims{"sub": "u", "tenant_id": "t1", "scope": "notifications.subscribe", "exp": time.Now().Add(time.Hour).Unix()}
	es, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
	c, err := testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: es})
	if err != nil {
		t.Fatalf("ES256 token: %v", err)
	}
	c.Close()
	// An HS256 token "signed" with the public key bytes must not pass: the
	// algorithm is pinned to the key type.
	pemBytes, _ := os.ReadFile(file)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pemBytes)
	_, err = testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: forged})
	var he *testclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 401 {
		t.Fatalf("HS256 token against a public key: %v, want 401", err)
	}
}

func TestConnectionClosedWhenTokenExpires(t *testing.T) {
	env := startHub(t)
	tok := env.token(server.TokenRequest{Subject: "u", Tenant: "t1", Scopes: []string{"notifications.subscribe"}, TTL: 2 * time.Second})
	c := env.dial("t1", testclient.Options{Token: tok})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open after its token expired")
	}
	m := c.CloseMessage()
	if m == nil || !m.AllowReconnect {
		t.Fatalf("close message %+v, want one that allows reconnecting", m)
	}
}

func TestLogsNeverContainTokens(t *testing.T) {
	var logs syncBuffer
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	env := &hubEnv{t: t, srv: srv}
	good := env.clientToken("t1")
	expired := env.token(server.TokenRequest{Subject: "u", Tenant: "t1", Scopes: []string{"notifications.subscribe"}, TTL: -time.Minute})
	for _, opts := range []testclient.Options{{Token: good, TokenInQuery: true}, {Token: good}, {Token: expired, TokenInQuery: true}, {Token: expired}} {
		if c, err := testclient.Dial(context.Background(), env.hubURL(), opts); err == nil {
			_ = c.Subscribe(context.Background(), licences)
			_ = c.Invoke(context.Background(), "Nope")
			c.Close()
		}
	}
	pub := &testclient.Publisher{BaseURL: srv.InternalURL(), Token: expired}
	_, _ = pub.Publish(context.Background(), "t1", licence("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	out := logs.String()
	if out == "" {
		t.Fatal("no logs at debug level: the test would prove nothing")
	}
	for _, tok := range []string{good, expired} {
		if strings.Contains(out, tok) || strings.Contains(out, tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Fatalf("a token (or its signature) appears in the logs:\n%s", out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the hub's concurrent loggers.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
