package signalr

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var sseHeader = http.Header{"Accept": {"text/event-stream"}}

// openSSE starts the event stream of token and returns the response, whose
// body stays open until the test ends.
func (h *testHub) openSSE(t *testing.T, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.connURL("id="+token), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("SSE GET: status %d", res.StatusCode)
	}
	return res
}

// startLP makes the first long poll of token, which starts the transport.
func (h *testHub) startLP(t *testing.T, token string) {
	t.Helper()
	res, body := h.do(t, http.MethodGet, h.connURL("id="+token), nil, "")
	if res.StatusCode != http.StatusOK || body != "" {
		t.Fatalf("first poll: %d %q, want 200 and no body", res.StatusCode, body)
	}
}

// TestStatusCodes checks every refusal rule of the connection URL against
// the status (and text) ASP.NET Core answers with.
func TestStatusCodes(t *testing.T) {
	h := startTestHub(t, Options{})

	type check struct {
		name   string
		method string
		query  string
		header http.Header
		status int
		body   string // substring of the plain-text body
	}
	run := func(t *testing.T, c check) {
		t.Helper()
		res, body := h.do(t, c.method, h.connURL(c.query), c.header, "")
		if res.StatusCode != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s: %s ?%s → %d %q, want %d %q", c.name, c.method, c.query, res.StatusCode, body, c.status, c.body)
		}
	}

	for _, c := range []check{
		{"poll without id", http.MethodGet, "", nil, 400, "Connection ID required"},
		{"SSE without id", http.MethodGet, "", sseHeader, 400, "Connection ID required"},
		{"POST without id", http.MethodPost, "", nil, 400, "Connection ID required"},
		{"DELETE without id", http.MethodDelete, "", nil, 400, "Connection ID required"},
		{"poll of unknown id", http.MethodGet, "id=nope", nil, 404, "No Connection with that ID"},
		{"SSE of unknown id", http.MethodGet, "id=nope", sseHeader, 404, "No Connection with that ID"},
		{"POST to unknown id", http.MethodPost, "id=nope", nil, 404, "No Connection with that ID"},
		{"DELETE of unknown id", http.MethodDelete, "id=nope", nil, 404, "No Connection with that ID"},
		{"other verb", http.MethodPut, "id=nope", nil, 405, ""},
		{"HEAD", http.MethodHead, "id=nope", nil, 405, ""},
	} {
		run(t, c)
	}
	res, _ := h.do(t, http.MethodGet, h.url+"/negotiate", nil, "")
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET negotiate: %d, want 405", res.StatusCode)
	}
	if _, status := h.dialWS(t, "id=nope"); status != http.StatusNotFound {
		t.Errorf("WebSocket for unknown id: %d, want 404", status)
	}

	t.Run("not started", func(t *testing.T) {
		tok := h.token(t)
		run(t, check{"POST before the transport started", http.MethodPost, "id=" + tok, nil, 409, ""})
		run(t, check{"DELETE of a connection that is not long polling", http.MethodDelete, "id=" + tok, nil, 400, "Cannot terminate this connection using the DELETE endpoint."})
	})

	t.Run("long polling", func(t *testing.T) {
		tok := h.token(t)
		h.startLP(t, tok)
		run(t, check{"SSE on a long-polling connection", http.MethodGet, "id=" + tok, sseHeader, 400, "Cannot change transports mid-connection"})
		if _, status := h.dialWS(t, "id="+tok); status != http.StatusBadRequest {
			t.Errorf("WebSocket on a long-polling connection: %d, want 400", status)
		}
		run(t, check{"DELETE", http.MethodDelete, "id=" + tok, nil, 202, ""})
		run(t, check{"POST after DELETE", http.MethodPost, "id=" + tok, nil, 404, ""})
		run(t, check{"poll after DELETE", http.MethodGet, "id=" + tok, nil, 204, ""})
	})

	t.Run("server-sent events", func(t *testing.T) {
		tok := h.token(t)
		h.openSSE(t, tok)
		run(t, check{"second SSE", http.MethodGet, "id=" + tok, sseHeader, 409, ""})
		run(t, check{"poll on an SSE connection", http.MethodGet, "id=" + tok, nil, 400, "Cannot change transports mid-connection"})
		if _, status := h.dialWS(t, "id="+tok); status != http.StatusBadRequest {
			t.Errorf("WebSocket on an SSE connection: %d, want 400", status)
		}
		run(t, check{"DELETE of an SSE connection", http.MethodDelete, "id=" + tok, nil, 400, "Cannot terminate"})
	})

	t.Run("websockets", func(t *testing.T) {
		tok := h.token(t)
		h.dialWS(t, "id="+tok)
		eventually(t, "websocket attached", func() bool { c, _ := h.ep.lookup(tok); _, k, _ := c.snapshot(); return k == kindWebSockets })
		if _, status := h.dialWS(t, "id="+tok); status != http.StatusConflict {
			t.Errorf("second WebSocket: %d, want 409", status)
		}
		run(t, check{"POST on a WebSocket connection", http.MethodPost, "id=" + tok, nil, 405, "POST requests are not allowed for WebSocket connections."})
		run(t, check{"poll on a WebSocket connection", http.MethodGet, "id=" + tok, nil, 400, "Cannot change transports mid-connection"})
		run(t, check{"SSE on a WebSocket connection", http.MethodGet, "id=" + tok, sseHeader, 400, "Cannot change transports mid-connection"})
		run(t, check{"DELETE of a WebSocket connection", http.MethodDelete, "id=" + tok, nil, 400, "Cannot terminate"})
	})
}

func TestDisabledTransportsAre404AndNotOffered(t *testing.T) {
	h := startTestHub(t, Options{Transports: []string{WebSockets}})
	n := h.negotiate(t, "negotiateVersion=1")
	if len(n.AvailableTransports) != 1 || n.AvailableTransports[0].Transport != WebSockets {
		t.Fatalf("negotiate offers %+v, want only WebSockets", n.AvailableTransports)
	}
	for name, header := range map[string]http.Header{"long polling": nil, "SSE": sseHeader} {
		res, body := h.do(t, http.MethodGet, h.connURL("id="+n.ConnectionToken), header, "")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "transport not supported by this end point type") {
			t.Errorf("%s on a WebSockets-only endpoint: %d %q, want 404", name, res.StatusCode, body)
		}
	}

	lp := startTestHub(t, Options{Transports: []string{LongPolling}})
	if _, status := lp.dialWS(t, "id="+lp.token(t)); status != http.StatusNotFound {
		t.Errorf("WebSocket on a long-polling-only endpoint: %d, want 404", status)
	}
	if _, err := NewEndpoint(Options{Handler: newRecorder(t), Transports: []string{"Carrier pigeon"}}); err == nil {
		t.Error("an unknown transport name must be refused")
	}
}

func TestNegotiatedConnectionWithoutTransportIsReaped(t *testing.T) {
	h := startTestHub(t, Options{DisconnectTimeout: 100 * time.Millisecond})
	tok := h.token(t)
	eventually(t, "negotiated connection reaped", func() bool { return h.ep.Len() == 0 })
	res, _ := h.do(t, http.MethodGet, h.connURL("id="+tok), nil, "")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("poll after the connection expired: %d, want 404", res.StatusCode)
	}
}
