package signalr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
)

// recorder is a Handler that records what the endpoint tells it. Invoke
// answers "Echo" with its argument and counts every call; it fails the test
// if two calls for one connection ever overlap.
type recorder struct {
	t            *testing.T
	connected    chan *Conn
	disconnected chan *Conn
	calls        atomic.Int64
	inFlight     sync.Map // *Conn → *atomic.Int32

	mu      sync.Mutex
	targets []string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, connected: make(chan *Conn, 64), disconnected: make(chan *Conn, 64)}
}

func (r *recorder) OnConnected(c *Conn) error { r.connected <- c; return nil }

func (r *recorder) Invoke(c *Conn, target string, args []any) (any, error) {
	v, _ := r.inFlight.LoadOrStore(c, new(atomic.Int32))
	n := v.(*atomic.Int32)
	if n.Add(1) > 1 {
		r.t.Errorf("invocations of connection %s overlap", c.ID())
	}
	defer n.Add(-1)
	time.Sleep(time.Millisecond) // widen the window for overlaps
	r.calls.Add(1)
	r.mu.Lock()
	r.targets = append(r.targets, target)
	r.mu.Unlock()
	if target == "Echo" && len(args) == 1 {
		var s string
		if err := c.Protocol().Unmarshal(args[0].(RawValue), &s); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, nil
}

func (r *recorder) OnDisconnected(c *Conn) { r.disconnected <- c }

// nextConn waits for the next connection to complete its handshake.
func (r *recorder) nextConn(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-r.connected:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection completed its handshake within 5s")
		return nil
	}
}

// waitDisconnected waits for OnDisconnected of c.
func (r *recorder) waitDisconnected(t *testing.T, c *Conn, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-r.disconnected:
			if got == c {
				return
			}
		case <-deadline:
			t.Fatalf("OnDisconnected of %s did not run within %v", c.ID(), within)
		}
	}
}

// testHub is an endpoint mounted at /hub on a loopback listener, with a fast
// heartbeat so that timeouts can be tested in milliseconds.
type testHub struct {
	ep     *Endpoint
	rec    *recorder
	client *http.Client
	url    string // http://127.0.0.1:port/hub
}

func startTestHub(t *testing.T, opts Options) *testHub {
	t.Helper()
	rec := newRecorder(t)
	if opts.Handler == nil {
		opts.Handler = rec
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ep, err := NewEndpoint(opts)
	if err != nil {
		t.Fatal(err)
	}
	ep.tick = 10 * time.Millisecond
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	ep.Mount(app, "/hub")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	go ep.Run(ctx)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		// Long-polling clients that stopped polling hold the drain up to this.
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		_ = ep.Shutdown(sctx)
		cancel()
		// Connections the client dialled but never used would hold up the
		// server's shutdown until the deadline.
		client.CloseIdleConnections()
		_ = app.ShutdownWithContext(sctx)
	})
	return &testHub{ep: ep, rec: rec, client: client, url: "http://" + ln.Addr().String() + "/hub"}
}

type negotiated struct {
	NegotiateVersion     int    `json:"negotiateVersion"`
	ConnectionID         string `json:"connectionId"`
	ConnectionToken      string `json:"connectionToken"`
	UseStatefulReconnect *bool  `json:"useStatefulReconnect"`
	AvailableTransports  []struct {
		Transport       string   `json:"transport"`
		TransferFormats []string `json:"transferFormats"`
	} `json:"availableTransports"`
}

// negotiate posts to the negotiate URL with query (e.g. "negotiateVersion=1").
func (h *testHub) negotiate(t *testing.T, query string) negotiated {
	t.Helper()
	res, body := h.do(t, http.MethodPost, h.url+"/negotiate?"+query, nil, "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("negotiate: %d %s", res.StatusCode, body)
	}
	var n negotiated
	if err := json.Unmarshal([]byte(body), &n); err != nil {
		t.Fatalf("negotiate response %q: %v", body, err)
	}
	return n
}

// token negotiates a version 1 connection and returns its token.
func (h *testHub) token(t *testing.T) string {
	return h.negotiate(t, "negotiateVersion=1").ConnectionToken
}

// do sends one request and returns the response with its body read.
func (h *testHub) do(t *testing.T, method, url string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return res, string(b)
}

// connURL is the connection URL with query.
func (h *testHub) connURL(query string) string { return h.url + "?" + query }

// post sends client bytes for token and requires 200 with an empty body.
func (h *testHub) post(t *testing.T, token, data string) {
	t.Helper()
	res, body := h.do(t, http.MethodPost, h.connURL("id="+token), nil, data)
	if res.StatusCode != http.StatusOK || body != "" {
		t.Fatalf("POST: %d %q, want 200 and no body", res.StatusCode, body)
	}
}

// dialWS opens a WebSocket to the connection URL with query; it returns the
// HTTP status of a refused upgrade.
func (h *testHub) dialWS(t *testing.T, query string) (*websocket.Conn, int) {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(strings.Replace(h.connURL(query), "http", "ws", 1), nil)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && res != nil {
			return nil, res.StatusCode
		}
		t.Fatalf("dial websocket: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

// readFrames reads WebSocket messages until want text-protocol records have
// arrived and returns them (without separators).
func readFrames(t *testing.T, ws *websocket.Conn, want int) []string {
	t.Helper()
	var out []string
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(out) < want {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v (after %q)", err, out)
		}
		out = append(out, splitRecords(data)...)
	}
	return out
}

// splitRecords splits text-protocol bytes into their records.
func splitRecords(data []byte) []string {
	var out []string
	for _, r := range bytes.Split(data, []byte{recordSeparator}) {
		if len(r) > 0 {
			out = append(out, string(r))
		}
	}
	return out
}

// jsonFrame encodes m with the JSON protocol.
func jsonFrame(t *testing.T, m Message) []byte {
	t.Helper()
	b, err := JSONProtocol{}.AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call is a server→client invocation frame of "n" with argument i, for
// telling frames apart.
func call(t *testing.T, i int) []byte {
	return jsonFrame(t, Message{Type: TypeInvocation, Target: "n", Arguments: []any{i}})
}

// callText is how call(i) reads once split into records.
func callText(i int) string {
	b, _ := json.Marshal(i)
	return `{"type":1,"target":"n","arguments":[` + string(b) + `]}`
}

const (
	handshakeJSON    = "{\"protocol\":\"json\",\"version\":1}\x1e"
	handshakeJSONv2  = "{\"protocol\":\"json\",\"version\":2}\x1e"
	handshakeMsgpack = "{\"protocol\":\"messagepack\",\"version\":1}\x1e"
)

// eventually polls cond every few milliseconds until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
