package signalr

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// slowConnect takes its time in OnConnected and sends a frame from there, as
// a hub that subscribes the connection at connect time does.
type slowConnect struct {
	done atomic.Bool
}

func (h *slowConnect) OnConnected(c *Conn) error {
	time.Sleep(50 * time.Millisecond)
	frame, _ := c.Protocol().AppendMessage(nil, &Message{Type: TypeInvocation, Target: "Hello", Arguments: []any{}})
	c.Send(frame)
	h.done.Store(true)
	return nil
}
func (*slowConnect) Invoke(*Conn, string, []any) (any, error) { return nil, nil }
func (*slowConnect) OnDisconnected(*Conn)                     {}

// The handshake response is the client's signal that it is connected: it
// must not go out before OnConnected has finished, and what OnConnected sends
// follows it.
func TestHandshakeResponseWaitsForOnConnected(t *testing.T) {
	h := &slowConnect{}
	hub := startTestHub(t, Options{Handler: h})
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(hub.url, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("{\"protocol\":\"json\",\"version\":1}\x1e")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, first, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != "{}\x1e" {
		t.Fatalf("first message %q, want the handshake response alone", first)
	}
	if !h.done.Load() {
		t.Fatal("the handshake response went out before OnConnected finished")
	}
	_, second, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(second), `"target":"Hello"`) {
		t.Fatalf("second message %q (%v), want what OnConnected sent", second, err)
	}
}
