package signalr

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

const jsonHandshake = "{\"protocol\":\"json\",\"version\":1}\x1e"

func TestNegotiateVersions(t *testing.T) {
	h := startTestHub(t, Options{})
	tests := []struct {
		query        string
		version      int
		tokenIsID    bool // version 0: the connection id is the token
		wantTokenKey bool
	}{
		{"", 0, true, false},
		{"negotiateVersion=0", 0, true, false},
		{"negotiateVersion=1", 1, false, true},
		{"negotiateVersion=7", 1, false, true}, // newer clients get the newest the server has
	}
	for _, tt := range tests {
		n := h.negotiate(t, tt.query)
		if n.NegotiateVersion != tt.version || (n.ConnectionToken != "") != tt.wantTokenKey {
			t.Errorf("%q: version %d token %q", tt.query, n.NegotiateVersion, n.ConnectionToken)
		}
		id := n.ConnectionToken
		if tt.tokenIsID {
			id = n.ConnectionID
		} else if n.ConnectionToken == n.ConnectionID {
			t.Errorf("%q: the secret token equals the public id", tt.query)
		}
		for _, s := range []string{n.ConnectionID, n.ConnectionToken} {
			if strings.ContainsAny(s, "+/=") {
				t.Errorf("%q: %q is not URL-safe (the JS client does not encode it)", tt.query, s)
			}
		}
		ws, status := h.dialWS(t, "id="+id)
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("%q: connect with id: %d", tt.query, status)
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(jsonHandshake))
		if got := readFrames(t, ws, 1); got[0] != "{}" {
			t.Fatalf("%q: handshake response %q", tt.query, got)
		}
	}
	res, body := h.do(t, http.MethodPost, h.url+"/negotiate?negotiateVersion=x", nil, "")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"error"`) {
		t.Errorf("bad negotiateVersion: %d %s, want 200 with an error (what the clients expect)", res.StatusCode, body)
	}
}

func TestKeepAlivePingsOnAnIdleWebSocket(t *testing.T) {
	h := startTestHub(t, Options{KeepAliveInterval: 50 * time.Millisecond})
	ws, _ := h.dialWS(t, "")
	_ = ws.WriteMessage(websocket.TextMessage, []byte(jsonHandshake))
	got := readFrames(t, ws, 3) // the handshake response, then pings unprompted
	if got[0] != "{}" || got[1] != `{"type":6}` || got[2] != `{"type":6}` {
		t.Fatalf("got %q, want the handshake response then pings", got)
	}
}

func TestClientTimeout(t *testing.T) {
	h := startTestHub(t, Options{ClientTimeout: 300 * time.Millisecond, KeepAliveInterval: time.Hour})

	// Armed by the client's first Ping, as in ASP.NET Core: then silence closes it.
	ws, _ := h.dialWS(t, "")
	_ = ws.WriteMessage(websocket.TextMessage, []byte(jsonHandshake+"{\"type\":6}\x1e"))
	got := readFrames(t, ws, 2)
	if !strings.Contains(got[1], `"type":7`) || !strings.Contains(got[1], `"error"`) || !strings.Contains(got[1], `"allowReconnect":true`) {
		t.Fatalf("got %q, want a Close with an error that allows reconnecting", got)
	}

	// A client that never pinged (long polling clients do not) is not timed out.
	quiet, _ := h.dialWS(t, "")
	_ = quiet.WriteMessage(websocket.TextMessage, []byte(jsonHandshake))
	readFrames(t, quiet, 1)
	_ = quiet.SetReadDeadline(time.Now().Add(time.Second))
	if _, data, err := quiet.ReadMessage(); err == nil {
		t.Fatalf("a client that never pinged got %q", data)
	} else if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		t.Fatalf("a client that never pinged was disconnected: %v", err)
	}
}
