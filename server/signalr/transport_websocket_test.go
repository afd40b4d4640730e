package signalr

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestPutFrameHeader(t *testing.T) {
	for _, tt := range []struct {
		payload int
		header  []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{0x10000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		buf := make([]byte, frameHeadroom+tt.payload)
		frame := putFrameHeader(buf, websocket.TextMessage)
		if len(frame) != len(tt.header)+tt.payload || !bytes.Equal(frame[:len(tt.header)], tt.header) {
			t.Errorf("payload %d: header % x, want % x", tt.payload, frame[:len(tt.header)], tt.header)
		}
	}
}

// TestFramesOfEverySizeArrive: the hub's own framing, read by the library's
// client, at each length encoding and across them in one batch.
func TestFramesOfEverySizeArrive(t *testing.T) {
	h := startTestHub(t, Options{})
	ws, _ := h.dialWS(t, "")
	_ = ws.WriteMessage(websocket.TextMessage, []byte(handshakeJSON))
	c := h.rec.nextConn(t)
	readFrames(t, ws, 1)
	for _, n := range []int{1, 90, 100, 70_000, 200_000} {
		s := strings.Repeat("x", n)
		c.Send(jsonFrame(t, Message{Type: TypeInvocation, Target: "n", Arguments: []any{s}}))
		want := `{"type":1,"target":"n","arguments":["` + s + `"]}`
		if got := readFrames(t, ws, 1); len(got) != 1 || got[0] != want {
			t.Fatalf("payload of %d: got %d records (%d bytes), want the one sent", n, len(got), len(strings.Join(got, "")))
		}
	}
}

// TestPingIsAnsweredBesideTheWriter: a client's WebSocket ping gets its pong
// through the transport's own writer, between hub messages.
func TestPingIsAnsweredBesideTheWriter(t *testing.T) {
	h := startTestHub(t, Options{KeepAliveInterval: 20 * time.Millisecond})
	ws, _ := h.dialWS(t, "")
	pong := make(chan string, 1)
	ws.SetPongHandler(func(data string) error { pong <- data; return nil })
	_ = ws.WriteMessage(websocket.TextMessage, []byte(handshakeJSON))
	readFrames(t, ws, 1)
	if err := ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		readFrames(t, ws, 1) // keep-alive pings; the pong is handled while reading
		select {
		case got := <-pong:
			if got != "are you there" {
				t.Fatalf("pong %q", got)
			}
			return
		case <-deadline:
			t.Fatal("no pong within 5s")
		default:
		}
	}
}

// TestStuckWriteFailsWithinSendTimeout: the write deadline is only moved
// when it is near, but a write to a client that stopped reading still fails
// within SendTimeout, and the connection ends.
func TestStuckWriteFailsWithinSendTimeout(t *testing.T) {
	const timeout = 600 * time.Millisecond
	h := startTestHub(t, Options{SendTimeout: timeout, QueueLength: 1 << 20, QueueBytes: 1 << 30})
	ws, _ := h.dialWS(t, "")
	_ = ws.WriteMessage(websocket.TextMessage, []byte(handshakeJSON))
	c := h.rec.nextConn(t)
	readFrames(t, ws, 1)
	// From now on the client reads nothing: fill its socket buffers until
	// frames stay queued behind a blocked write.
	frame := jsonFrame(t, Message{Type: TypeInvocation, Target: "n", Arguments: []any{strings.Repeat("x", 64<<10)}})
	for stuck := 0; stuck < 20; {
		if !c.Send(frame) {
			t.Fatal("the connection ended before its write blocked")
		}
		time.Sleep(time.Millisecond)
		if h.ep.QueuedFrames() > 1 {
			stuck++
		} else {
			stuck = 0
		}
	}
	blocked := time.Now()
	h.rec.waitDisconnected(t, c, 5*time.Second)
	// The write blocked before `blocked`, and its deadline was at most
	// SendTimeout after it began; the rest is scheduling.
	if took := time.Since(blocked); took > timeout+300*time.Millisecond {
		t.Fatalf("the stuck write ended the connection after %v; SendTimeout is %v", took, timeout)
	}
	if got := h.ep.QueuedFrames(); got != 0 {
		t.Fatalf("%d frames still counted as queued after the connection ended", got)
	}
}
