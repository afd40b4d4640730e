package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

func TestPublishValidation(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.MaxPublishBytes = 64 << 10; c.MaxBatch = 10 })
	c := env.dial("t1", testclient.Options{})
	env.subscribe(c, resources)
	env.subscribe(c, licences)
	bad := resourceChanged("tickets", 7, "x")
	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"malformed JSON", `{"e":`, 400, ""},
		{"empty body", ``, 400, ""},
		{"not an object", `"hello"`, 400, ""},
		{"missing e", `{"p":{}}`, 400, "e"},
		{"e not a string", `{"e":5}`, 400, "e"},
		{"unknown event", `{"e":"portos.nope"}`, 400, "e"},
		{"unknown field", `{"e":"portos.licence.activated","event":"x"}`, 400, "event"},
		{"bad ca", `{"e":"portos.licence.activated","ca":"yesterday"}`, 400, "ca"},
		{"bad sender", `{"e":"portos.licence.activated","s":{"u":{"u":5}}}`, 400, "s.u.u"},
		{"resource event without payload", `{"e":"portos.resources.changed"}`, 400, "p"},
		{"action out of range", mustJSON(t, bad), 400, "p.a"},
		{"action as a name", `{"e":"portos.resources.changed","p":{"n":"t","a":"created"}}`, 400, "p.a"},
		{"missing resource name", `{"e":"portos.resources.changed","p":{"a":1}}`, 400, "p.n"},
		{"bad element in a batch", mustJSON(t, []any{licence("ok"), bad}), 400, "[1].p.a"},
		{"empty batch", `[]`, 400, ""},
		{"batch over the limit", mustJSON(t, make11()), 400, ""},
		{"body over the limit", `{"e":"portos.licence.activated","p":"` + strings.Repeat("x", 70<<10) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := env.pub.Publish(context.Background(), "t1", []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.status || res.Field != tt.field || res.Error == "" {
				t.Fatalf("got %d field %q error %q; want %d field %q and an error", res.Status, res.Field, res.Error, tt.status, tt.field)
			}
		})
	}
	// Nothing of the rejected inputs was delivered: the first thing to arrive is the sentinel.
	env.publish("t1", licence("sentinel"))
	if got := ref(next(t, c)); got != "sentinel" {
		t.Fatalf("a rejected notification was delivered: %q", got)
	}
}

func make11() []any {
	var out []any
	for i := range 11 {
		out = append(out, licence(fmt.Sprint(i)))
	}
	return out
}

func TestPublishAuth(t *testing.T) {
	env := startHub(t)
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"missing", "", 401},
		{"invalid", "x.y.z", 401},
		{"expired", env.token(server.TokenRequest{Subject: "svc", Scopes: []string{"notifications.publish"}, TTL: -time.Minute}), 401},
		{"client scope only", env.clientToken("t1"), 403},
		{"publisher", env.token(server.TokenRequest{Subject: "svc", Scopes: []string{"notifications.publish"}, TTL: time.Hour}), 202},
	}
	for _, tt := range tests {
		p := &testclient.Publisher{BaseURL: env.srv.InternalURL(), Token: tt.token}
		res, err := p.Publish(context.Background(), "t1", licence("x"))
		if err != nil || res.Status != tt.status {
			t.Errorf("%s: %v status %d, want %d", tt.name, err, res.Status, tt.status)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	env.subscribe(c, licences)
	env.publish("t1", licence("x"))
	next(t, c)
	for _, u := range []string{env.srv.HubURL() + "/healthz", env.srv.HubURL() + "/readyz"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", u, err, resp)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(env.srv.InternalURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, want := range []string{
		`notifyhub_connections{protocol="json",transport="WebSockets"} 1`,
		`notifyhub_notifications_total{outcome="delivered"} 1`,
		`notifyhub_notifications_total{outcome="published"} 1`,
		`notifyhub_subscriptions 1`,
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

var _ = payloads.ActionCreated

// TestPublishOversizeBodyReadsAnswer is a publisher that writes its whole
// oversized body before it reads: it must still read the 413, not a
// connection reset because the hub closed with the body unread.
func TestPublishOversizeBodyReadsAnswer(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.MaxPublishBytes = 64 << 10 })
	addr := strings.TrimPrefix(env.srv.InternalURL(), "http://")
	body := `{"e":"portos.licence.activated","p":"` + strings.Repeat("x", 4<<20) + `"}`
	for i := range 5 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := fmt.Sprintf("POST /internal/v1/tenants/t1/notifications HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			env.pub.Token, len(body), body)
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatalf("request %d: write: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond) // the hub's answer and close arrive before the read
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("request %d: read the answer: %v", i, err)
		}
		var e struct{ Error string }
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != 413 || e.Error == "" {
			t.Fatalf("request %d: got %d %q (%v), want 413 with an error", i, res.StatusCode, e.Error, err)
		}
	}
}
