package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"notifyhub/server"
	"notifyhub/testclient"
)

// dialRaw opens a WebSocket to the hub without any SignalR handshake.
func (e *hubEnv) dialRaw(tenant string) *websocket.Conn {
	e.t.Helper()
	u := strings.Replace(e.hubURL(), "http", "ws", 1)
	h := http.Header{"Authorization": {"Bearer " + e.clientToken(tenant)}}
	ws, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		e.t.Fatalf("raw dial: %v", err)
	}
	e.t.Cleanup(func() { ws.Close() })
	return ws
}

// readAll collects what the server sends until it closes the socket.
func readUntilClosed(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	var out []byte
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("server did not close the connection; got %q", out)
			}
			return out
		}
		out = append(out, data...)
	}
}

func TestHostileWireInput(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.HandshakeTimeout = time.Second })
	healthy := env.dial("t1", testclient.Options{})
	env.subscribe(healthy, licences)

	handshake := []byte("{\"protocol\":\"json\",\"version\":1}\x1e")
	tests := []struct {
		name      string
		binary    bool
		handshake bool   // send a valid handshake first
		send      []byte // then this
		want      string // in what the server sends before closing
	}{
		{"unknown protocol", false, false, []byte("{\"protocol\":\"xml\",\"version\":1}\x1e"), `"The protocol 'xml' is not supported."`},
		{"unsupported version", false, false, []byte("{\"protocol\":\"json\",\"version\":3}\x1e"), `does not support version 3`},
		{"handshake not JSON", false, false, []byte("hello\x1e"), `"error":"An unexpected error occurred during connection handshake.`},
		{"handshake without protocol", false, false, []byte("{\"version\":1}\x1e"), `no protocol`},
		{"invocation before handshake", false, false, []byte("{\"type\":1,\"target\":\"Subscribe\",\"arguments\":[]}\x1e"), `no protocol`},
		{"oversize handshake", false, false, bytes.Repeat([]byte("a"), 40<<10), `Handshake was canceled.`},
		{"no handshake at all", false, false, nil, `Handshake was canceled.`},
		{"invalid JSON", false, true, []byte("{x}\x1e"), `"type":7,"error":"Connection closed with an error.`},
		{"JSON of the wrong shape", false, true, []byte("[1,2]\x1e"), `"type":7,"error":"Connection closed with an error.`},
		{"missing type", false, true, []byte("{\"target\":\"x\"}\x1e"), `missing type`},
		{"invocation without arguments", false, true, []byte("{\"type\":1,\"target\":\"Subscribe\"}\x1e"), `needs target and arguments`},
		{"second handshake", false, true, handshake, `missing type`},
		{"oversize message", false, true, append(append([]byte(`{"type":1,"target":"Subscribe","arguments":["`), bytes.Repeat([]byte("a"), 40<<10)...), "\"]}\x1e"...), `maximum message size`},
		{"oversize without separator", false, true, bytes.Repeat([]byte("a"), 33<<10), `maximum message size`},
		{"binary garbage on a text connection", true, true, []byte{0x93, 0x01, 0xff, 0x1e}, `"type":7,"error":"Connection closed with an error.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := env.dialRaw("t1")
			if tt.handshake {
				if err := ws.WriteMessage(websocket.TextMessage, handshake); err != nil {
					t.Fatal(err)
				}
			}
			if tt.send != nil {
				op := websocket.TextMessage
				if tt.binary {
					op = websocket.BinaryMessage
				}
				if err := ws.WriteMessage(op, tt.send); err != nil {
					t.Fatal(err)
				}
			}
			got := string(readUntilClosed(t, ws))
			if !strings.Contains(got, tt.want) {
				t.Fatalf("server sent %q, want it to contain %q", got, tt.want)
			}
			if tt.handshake && !strings.HasPrefix(got, "{}\x1e") {
				t.Fatalf("server sent %q, want the handshake response first", got)
			}
		})
	}

	t.Run("tolerated input", func(t *testing.T) {
		// Unknown message types, completions for unknown ids, several
		// messages in one frame, a message split over frames, and JSON in a
		// binary frame (as the Java client sends it) keep the connection up.
		ws := env.dialRaw("t1")
		frames := [][]byte{
			handshake,
			[]byte("{\"type\":99}\x1e{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"nope\",\"result\":1}\x1e{\"type\":5,\"invocationId\":\"x\"}\x1e"),
			[]byte(`{"type":1,"invocationId":"1","target":"Subscribe",`),
			[]byte("\"arguments\":[{\"e\":\"portos.licence.activated\"}]}\x1e"),
		}
		for i, f := range frames {
			op := websocket.TextMessage
			if i == 1 {
				op = websocket.BinaryMessage
			}
			if err := ws.WriteMessage(op, f); err != nil {
				t.Fatal(err)
			}
		}
		var got []byte
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for !bytes.Contains(got, []byte(`"invocationId":"1"`)) {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("connection ended: %v after %q", err, got)
			}
			got = append(got, data...)
		}
		if !bytes.Contains(got, []byte("{\"type\":3,\"invocationId\":\"1\"}\x1e")) {
			t.Fatalf("want a void completion for the split invocation, got %q", got)
		}
	})

	env.publish("t1", licence("after"))
	if got := ref(next(t, healthy)); got != "after" {
		t.Fatalf("healthy connection got %q", got)
	}
}

func TestSlowConsumerIsClosedWithoutBlockingOthers(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.QueueLength = 64; c.SendTimeout = 3 * time.Second })
	healthy := env.dial("t1", testclient.Options{Events: 1 << 14})
	env.subscribe(healthy, licences)

	// A client that subscribes and then never reads again.
	slow := env.dialRaw("t1")
	for _, f := range []string{"{\"protocol\":\"json\",\"version\":1}\x1e", "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Subscribe\",\"arguments\":[{\"e\":\"portos.licence.activated\"}]}\x1e"} {
		if err := slow.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := []byte{}; !bytes.Contains(got, []byte(`"invocationId":"1"`)); {
		_, data, err := slow.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, data...)
	}

	// Publish far more than the socket buffers and the queue can hold.
	big := strings.Repeat("x", 16<<10)
	const batches, per = 40, 25
	for b := range batches {
		var batch []any
		for i := range per {
			n := licence(string(rune('a'+b%26)) + "-" + time.Now().Format("150405.000000"))
			n["p"] = map[string]any{"blob": big, "i": b*per + i}
			batch = append(batch, n)
		}
		env.publish("t1", batch)
	}
	env.publish("t1", licence("done"))
	for i := 0; i < batches*per; i++ {
		next(t, healthy)
	}
	if got := ref(next(t, healthy)); got != "done" {
		t.Fatalf("healthy client: got %q, want done after all %d", got, batches*per)
	}
	waitFor(t, func() bool { return metricValue(t, env, "notifyhub_slow_consumer_closes_total") >= 1 })
	waitFor(t, func() bool { return metricValue(t, env, "notifyhub_outbound_queued_frames") == 0 })
	waitFor(t, func() bool {
		return metricValue(t, env, `notifyhub_connections{protocol="json",transport="WebSockets"}`) == 1
	})
}

func TestConnectionAndInvocationLimits(t *testing.T) {
	env := startHub(t, func(c *server.Config) {
		c.MaxConnectionsPerUser = 2
		c.MaxConnectionsPerTenant = 3
		c.InvocationRate, c.InvocationBurst = 1, 3
	})
	tok := func(user string) string {
		return env.token(server.TokenRequest{Subject: user, Tenant: "t1", Scopes: []string{"notifications.subscribe"}, TTL: time.Hour})
	}
	env.dial("t1", testclient.Options{Token: tok("u1")})
	env.dial("t1", testclient.Options{Token: tok("u1")})
	_, err := testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: tok("u1")})
	if he, ok := err.(*testclient.HTTPError); !ok || he.StatusCode != http.StatusTooManyRequests || !strings.Contains(he.Body, "connections") {
		t.Fatalf("third connection of a user: %v, want 429", err)
	}
	c := env.dial("t1", testclient.Options{Token: tok("u2")})
	_, err = testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: tok("u3"), SkipNegotiation: true})
	if he, ok := err.(*testclient.HTTPError); !ok || he.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth connection of a tenant: %v, want 429", err)
	}
	// Invocations beyond the burst fail with a rate-limit error; the connection stays.
	var limited int
	for range 6 {
		if err := c.Subscribe(context.Background(), licences); err != nil {
			if !strings.Contains(err.Error(), "rate limit") {
				t.Fatalf("unexpected error %v", err)
			}
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 6 rapid invocations were limited, want at least 2", limited)
	}
	env.publish("t1", licence("still-subscribed"))
	if got := ref(next(t, c)); got != "still-subscribed" {
		t.Fatalf("got %q", got)
	}
	// Unknown methods count as well: each one costs the hub a Completion.
	limited = 0
	for range 4 {
		err := c.Invoke(context.Background(), "NoSuchMethod")
		if err != nil && strings.Contains(err.Error(), "rate limit") {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("rapid invocations of an unknown method were not limited")
	}
}

func TestShutdownDeliversQueuedThenCloses(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	env.subscribe(c, licences)
	var batch []any
	for i := range 100 {
		batch = append(batch, licence(string(rune('A'+i%26))))
	}
	env.publish("t1", batch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i := range 100 {
		select {
		case <-c.Events():
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 100 accepted notifications arrived before the close", i)
		}
	}
	<-c.Done()
	if m := c.CloseMessage(); m == nil || !m.AllowReconnect || m.Error != "" {
		t.Fatalf("close message %+v, want a plain Close with allowReconnect", m)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue reads one series from /metrics (0 when absent).
func metricValue(t *testing.T, env *hubEnv, series string) float64 {
	t.Helper()
	resp, err := http.Get(env.srv.InternalURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			_ = json.Unmarshal([]byte(rest), &v)
			return v
		}
	}
	return 0
}

// A user at the connection limit keeps using the connections they have: polls
// and sends of an existing long-polling connection are not new connections.
func TestLimitCountsConnectionsNotRequests(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.MaxConnectionsPerUser = 1 })
	tok := env.clientToken("t1")
	do := func(method, url, body string) int { return env.status(method, url, tok, body) }
	conn := env.hubURL() + "?id=" + env.negotiate(tok)
	if s := do(http.MethodGet, conn, ""); s != 200 {
		t.Fatalf("first poll: %d", s)
	}
	if s := do(http.MethodPost, conn, "{\"protocol\":\"json\",\"version\":1}\x1e"); s != 200 {
		t.Fatalf("handshake send: %d", s)
	}
	waitFor(t, func() bool {
		return metricValue(t, env, `notifyhub_connections{protocol="json",transport="LongPolling"}`) == 1
	})
	if s := do(http.MethodPost, conn, "{\"type\":6}\x1e"); s != 200 {
		t.Fatalf("send at the limit: %d, want 200", s)
	}
	if s := do(http.MethodGet, conn, ""); s != 200 {
		t.Fatalf("poll at the limit: %d, want 200", s)
	}
	if _, err := testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: tok}); err == nil {
		t.Fatal("a second connection beyond the limit was accepted")
	}
}

// Negotiated connections count against the limits only once they connect, so
// what bounds those that never do is the number a user may open per
// disconnect timeout: the same as their connection limit.
func TestUnusedNegotiationsAreBounded(t *testing.T) {
	env := startHub(t, func(c *server.Config) { c.MaxConnectionsPerUser = 3 })
	tok := env.clientToken("t1")
	for i := range 3 {
		if s := env.status(http.MethodPost, env.hubURL()+"/negotiate?negotiateVersion=1", tok, ""); s != 200 {
			t.Fatalf("negotiate %d: %d", i, s)
		}
	}
	resp := env.httpDo(context.Background(), http.MethodPost, env.hubURL()+"/negotiate?negotiateVersion=1", tok, "")
	var body struct{ Error string }
	if err := decodeJSON(resp, &body); err != nil || resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body.Error, "opened 3 connections") {
		t.Fatalf("fourth negotiate: %d %q (%v), want 429 saying why", resp.StatusCode, body.Error, err)
	}
	// Another user of the tenant is not affected.
	if s := env.status(http.MethodPost, env.hubURL()+"/negotiate?negotiateVersion=1", env.userToken("t1", "other"), ""); s != 200 {
		t.Fatalf("another user's negotiate: %d", s)
	}
}

// While a node drains, load balancers see it not ready and new connections
// are refused; connections it has still get their Close.
func TestDrainingRefusesNewConnections(t *testing.T) {
	env := startHub(t)
	tok := env.clientToken("t1")
	// A long-polling client that stopped polling holds the drain open until
	// the deadline, which leaves time to look at the node while it drains.
	if s := env.status(http.MethodGet, env.hubURL()+"?id="+env.negotiate(tok), tok, ""); s != 200 {
		t.Fatalf("first poll: %d", s)
	}
	ws := env.dial("t1", testclient.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- env.srv.Shutdown(ctx) }()

	<-ws.Done() // the WebSocket client got its Close at once
	if m := ws.CloseMessage(); m == nil || !m.AllowReconnect {
		t.Fatalf("close message %+v, want allowReconnect", m)
	}
	if status, body := env.readyz(); status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %s", status, body)
	}
	_, err := testclient.Dial(context.Background(), env.hubURL(), testclient.Options{Token: tok})
	var he *testclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new connection while draining: %v, want 503", err)
	}
	<-done
}

// A hub stopped right after it started stops: its listeners' goroutines may
// not have begun serving yet, and must not begin afterwards.
func TestShutdownRightAfterStart(t *testing.T) {
	for i := range 30 {
		cfg := server.DefaultConfig()
		cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
		cfg.StorePath = filepath.Join(t.TempDir(), "notifyhub.db")
		srv, err := server.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: shutdown: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: shutdown did not return", i)
		}
	}
}
