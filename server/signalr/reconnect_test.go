package signalr

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// statefulConn negotiates with stateful reconnect, opens the WebSocket and
// completes a version 2 handshake.
func (h *testHub) statefulConn(t *testing.T) (token string, ws *websocket.Conn, conn *Conn) {
	t.Helper()
	n := h.negotiate(t, "negotiateVersion=1&useStatefulReconnect=true")
	if n.UseStatefulReconnect == nil || !*n.UseStatefulReconnect {
		t.Fatalf("negotiate did not agree to stateful reconnect: %+v", n)
	}
	ws, status := h.dialWS(t, "id="+n.ConnectionToken)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("websocket: %d", status)
	}
	send(t, ws, handshakeJSONv2)
	if got := readFrames(t, ws, 1); got[0] != "{}" {
		t.Fatalf("handshake response %q", got)
	}
	conn = h.rec.nextConn(t)
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.sr == nil {
		t.Fatal("stateful reconnect is not on")
	}
	return n.ConnectionToken, ws, conn
}

func send(t *testing.T, ws *websocket.Conn, frames ...string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(strings.Join(frames, ""))); err != nil {
		t.Fatal(err)
	}
}

// drop cuts the TCP connection under ws: no close frame, as when a network
// goes away.
func drop(t *testing.T, h *testHub, conn *Conn, ws *websocket.Conn) {
	t.Helper()
	_ = ws.UnderlyingConn().Close()
	eventually(t, "server notices the drop", func() bool { _, _, tr := conn.snapshot(); return tr == nil })
}

// readUntil reads records until one equals want and returns those before it.
func readUntil(t *testing.T, ws *websocket.Conn, want string) []string {
	t.Helper()
	var before []string
	for {
		r := readFrames(t, ws, 1)
		for i, f := range r {
			if f == want {
				return append(before, r[:i]...)
			}
		}
		before = append(before, r...)
	}
}

func TestNegotiateStatefulReconnect(t *testing.T) {
	on := startTestHub(t, Options{StatefulReconnect: true})
	off := startTestHub(t, Options{})
	for _, tt := range []struct {
		h     *testHub
		query string
		want  bool
	}{
		{on, "negotiateVersion=1&useStatefulReconnect=true", true},
		{on, "negotiateVersion=1&UseStatefulReconnect=True", true},
		{on, "negotiateVersion=1", false},
		{on, "negotiateVersion=1&useStatefulReconnect=false", false},
		{off, "negotiateVersion=1&useStatefulReconnect=true", false},
	} {
		n := tt.h.negotiate(t, tt.query)
		if tt.want != (n.UseStatefulReconnect != nil && *n.UseStatefulReconnect) {
			t.Errorf("%s: useStatefulReconnect %v, want %v", tt.query, n.UseStatefulReconnect, tt.want)
		}
		if !tt.want && n.UseStatefulReconnect != nil {
			t.Errorf("%s: useStatefulReconnect must be absent unless true", tt.query)
		}
	}
}

func TestStatefulReconnectReplaysWhatTheClientMissed(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	tok, ws, conn := h.statefulConn(t)
	for i := 1; i <= 3; i++ {
		conn.Send(call(t, i))
	}
	if got := readFrames(t, ws, 3); got[2] != callText(3) {
		t.Fatalf("frames %q", got)
	}
	send(t, ws, "{\"type\":8,\"sequenceId\":2}\x1e")
	eventually(t, "ack processed", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.sr.sent.first == 3 && len(conn.sr.sent.frames) == 1
	})

	drop(t, h, conn, ws)
	conn.Send(call(t, 4)) // while detached: kept for the replay
	conn.Send(call(t, 5))

	ws2, status := h.dialWS(t, "id="+tok)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("reattach: %d, want 101", status)
	}
	want := []string{`{"type":9,"sequenceId":3}`, callText(3), callText(4), callText(5)}
	if got := readFrames(t, ws2, 4); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after reattach got %q, want %q", got, want)
	}
	conn.Send(call(t, 6))
	if got := readFrames(t, ws2, 1); got[0] != callText(6) {
		t.Fatalf("after the replay got %q", got)
	}
	select {
	case <-conn.Done():
		t.Fatal("the connection ended")
	default:
	}
	if h.ep.Len() != 1 || conn.Transport() != WebSockets {
		t.Fatalf("%d connections, transport %q", h.ep.Len(), conn.Transport())
	}
}

func TestStatefulReconnectAcksAndDropsDuplicates(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	tok, ws, conn := h.statefulConn(t)
	count := func(i int) string {
		return fmt.Sprintf("{\"type\":1,\"target\":\"Count\",\"arguments\":[%d]}\x1e", i)
	}
	send(t, ws, count(1), count(2))
	readUntil(t, ws, `{"type":8,"sequenceId":2}`) // acknowledged on the heartbeat

	drop(t, h, conn, ws)
	ws2, _ := h.dialWS(t, "id="+tok)
	if got := readFrames(t, ws2, 1); got[0] != `{"type":9,"sequenceId":1}` {
		t.Fatalf("first frame after reattach %q: want Sequence 1 (nothing sent yet)", got)
	}
	// The client resends from its oldest unacknowledged message; pretend the
	// Ack was lost, so 1 and 2 come again.
	send(t, ws2, "{\"type\":9,\"sequenceId\":1}\x1e", count(1), count(2), count(3))
	// An Ack says received, not run; a connection's invocations run in
	// order, so once Echo has answered, everything before it has run.
	send(t, ws2, "{\"type\":1,\"invocationId\":\"sync\",\"target\":\"Echo\",\"arguments\":[\"done\"]}\x1e")
	readUntil(t, ws2, `{"type":3,"invocationId":"sync","result":"done"}`)
	if got := h.rec.calls.Load(); got != 4 {
		t.Fatalf("%d invocations ran, want 4: Count 1-3 once each (duplicates dropped) and Echo", got)
	}
}

func TestStatefulReconnectRefusesSequenceBeyondReceived(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	_, ws, conn := h.statefulConn(t)
	send(t, ws, "{\"type\":9,\"sequenceId\":5}\x1e")
	got := readFrames(t, ws, 1)
	if !strings.Contains(got[0], `"type":7`) || !strings.Contains(got[0], "Sequence ID 5 greater than") {
		t.Fatalf("want a Close with the error, got %q", got)
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
}

func TestStatefulReconnectWindowEnds(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true, DisconnectTimeout: 100 * time.Millisecond})
	tok, ws, conn := h.statefulConn(t)
	drop(t, h, conn, ws)
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if _, status := h.dialWS(t, "id="+tok); status != http.StatusNotFound {
		t.Fatalf("late reattach: %d, want 404", status)
	}
}

func TestStatefulReconnectNotAfterCloseFrame(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	tok, ws, conn := h.statefulConn(t)
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if _, status := h.dialWS(t, "id="+tok); status != http.StatusNotFound {
		t.Fatalf("reattach after a close frame: %d, want 404", status)
	}
}

func TestStatefulReconnectTakesOverAnOpenSocket(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	tok, ws, conn := h.statefulConn(t)
	conn.Send(call(t, 1))
	readFrames(t, ws, 1)
	ws2, status := h.dialWS(t, "id="+tok)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("second socket: %d, want 101", status)
	}
	if got := readFrames(t, ws2, 2); got[0] != `{"type":9,"sequenceId":1}` || got[1] != callText(1) {
		t.Fatalf("new socket got %q", got)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break // the old socket was ended
		}
	}
}

func TestStatefulReconnectBufferOverflowCloses(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true, StatefulReconnectBufferSize: 200})
	_, ws, conn := h.statefulConn(t)
	sent := 0
	for conn.Send(call(t, sent)) {
		sent++
	}
	if sent == 0 || sent*len(call(t, 1)) > 200 {
		t.Fatalf("%d frames fitted in 200 bytes", sent)
	}
	frames := readUntil(t, ws, `{"type":7,"error":"Connection closed with an error. The stateful reconnect buffer is full: the client did not acknowledge its messages in time.","allowReconnect":true}`)
	if len(frames) != sent {
		t.Fatalf("%d frames before the Close, want all %d buffered ones", len(frames), sent)
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
}

func TestStatefulReconnectBufferOverflowWhileDetachedEnds(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true, StatefulReconnectBufferSize: 200})
	tok, ws, conn := h.statefulConn(t)
	drop(t, h, conn, ws)
	for conn.Send(call(t, 1)) {
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if _, status := h.dialWS(t, "id="+tok); status != http.StatusNotFound {
		t.Fatalf("reattach after the overflow: %d, want 404", status)
	}
}

func TestStatefulReconnectNeedsHandshakeVersion2(t *testing.T) {
	h := startTestHub(t, Options{StatefulReconnect: true})
	n := h.negotiate(t, "negotiateVersion=1&useStatefulReconnect=true")
	ws, _ := h.dialWS(t, "id="+n.ConnectionToken)
	send(t, ws, handshakeJSON)
	readFrames(t, ws, 1)
	conn := h.rec.nextConn(t)
	conn.mu.Lock()
	on := conn.sr != nil
	conn.mu.Unlock()
	if on {
		t.Fatal("stateful reconnect on after a version 1 handshake")
	}
	if _, status := h.dialWS(t, "id="+n.ConnectionToken); status != http.StatusConflict {
		t.Fatalf("second socket: %d, want 409", status)
	}
	drop := ws.UnderlyingConn().Close
	_ = drop()
	h.rec.waitDisconnected(t, conn, 5*time.Second) // without the feature a drop ends the connection
}

func TestReplayBuffer(t *testing.T) {
	b := replayBuffer{first: 1}
	for i := range 40 {
		if !b.push([]byte{byte(i)}, 40) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if b.push([]byte{0}, 40) {
		t.Fatal("push over the limit accepted")
	}
	b.ack(0) // nothing new: no change
	b.ack(10)
	if b.first != 11 || len(b.frames) != 30 || b.bytes != 30 || b.frames[0][0] != 10 {
		t.Fatalf("after ack 10: first %d, %d frames, %d bytes", b.first, len(b.frames), b.bytes)
	}
	b.ack(5) // older than what was acknowledged: ignored
	if b.first != 11 {
		t.Fatalf("a stale ack moved first to %d", b.first)
	}
	b.ack(1000) // beyond what was sent: everything
	if b.first != 41 || len(b.frames) != 0 || b.bytes != 0 || b.frames != nil {
		t.Fatalf("after acking all: first %d (want 41, the next id), %d frames, %d bytes, buffer kept %v", b.first, len(b.frames), b.bytes, b.frames != nil)
	}
}
