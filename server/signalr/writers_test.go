package signalr

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// wsConns dials n WebSocket connections that complete the JSON handshake
// and returns them with their Conns, in the same order.
func wsConns(t *testing.T, h *testHub, n int) ([]*websocket.Conn, []*Conn) {
	t.Helper()
	clients := make([]*websocket.Conn, n)
	conns := make([]*Conn, n)
	for i := range clients {
		clients[i], _ = h.dialWS(t, "")
		_ = clients[i].WriteMessage(websocket.TextMessage, []byte(handshakeJSON))
		conns[i] = h.rec.nextConn(t)
		readFrames(t, clients[i], 1)
	}
	return clients, conns
}

// writerGoroutines counts the goroutines that write WebSockets: the pool's
// and, in slow, the slow sockets' own.
func writerGoroutines() (all, slow int) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		switch {
		case strings.Contains(g, "(*Conn).writeSlow"):
			slow++
			all++
		case strings.Contains(g, "(*writerPool).work"):
			all++
		}
	}
	return all, slow
}

// TestWriterPoolKeepsEachConnectionsOrder: frames sent to many connections
// at once, from several goroutines, arrive at each in the order sent to it.
func TestWriterPoolKeepsEachConnectionsOrder(t *testing.T) {
	h := startTestHub(t, Options{})
	clients, conns := wsConns(t, h, 3*h.ep.writers.max)
	for _, c := range conns {
		if c.tr.(*wsTransport).rc == nil {
			t.Fatal("the transport cannot write without waiting: the test would not exercise the pool")
		}
	}
	const frames = 300
	var wg sync.WaitGroup
	for part := range 3 { // senders share the connections: the pool sees them interleaved
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range frames {
				for j := part; j < len(conns); j += 3 {
					conns[j].Send(call(t, i))
				}
			}
		}()
	}
	for j, ws := range clients {
		got := readFrames(t, ws, frames)
		for i, r := range got {
			if r != callText(i) {
				t.Fatalf("connection %d: record %d is %q, want %q", j, i, r, callText(i))
			}
		}
	}
	wg.Wait()
}

// TestClientsThatDoNotReadStallNoOne: more clients than the pool has
// writers stop reading, their sockets fill and their writes block; a client
// that reads still gets every frame at once, long before the send timeout
// would end the blocked writes.
func TestClientsThatDoNotReadStallNoOne(t *testing.T) {
	h := startTestHub(t, Options{SendTimeout: time.Minute, QueueLength: 1 << 20, QueueBytes: 1 << 30})
	n := 2 * h.ep.writers.max
	_, stuck := wsConns(t, h, n)
	healthyWS, healthy := wsConns(t, h, 1)
	big := jsonFrame(t, Message{Type: TypeInvocation, Target: "n", Arguments: []any{strings.Repeat("x", 256<<10)}})
	// Fill every stuck client's socket buffers until all their writes block,
	// each on a goroutine of its own.
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range stuck {
			c.Send(big)
		}
		time.Sleep(time.Millisecond)
		if _, slow := writerGoroutines(); slow == n {
			break
		}
		if time.Now().After(deadline) {
			_, slow := writerGoroutines()
			t.Fatalf("only %d of %d clients' writes blocked", slow, n)
		}
	}
	start := time.Now()
	const frames = 200
	for i := range frames {
		healthy[0].Send(call(t, i))
	}
	got := readFrames(t, healthyWS[0], frames)
	if took := time.Since(start); took > 3*time.Second || len(got) != frames || got[frames-1] != callText(frames-1) {
		t.Fatalf("the reading client got %d records in %v beside %d blocked sockets", len(got), took, n)
	}
}

// TestNoWriterGoroutineOutlivesItsWork: pool writers end when no connection
// has frames, and slow sockets' writers end with their connections.
func TestNoWriterGoroutineOutlivesItsWork(t *testing.T) {
	h := startTestHub(t, Options{SendTimeout: 200 * time.Millisecond, QueueLength: 1 << 20, QueueBytes: 1 << 30})
	clients, conns := wsConns(t, h, 20)
	for i := range 50 {
		for _, c := range conns {
			c.Send(call(t, i))
		}
	}
	for _, ws := range clients[1:] {
		readFrames(t, ws, 50)
	}
	// clients[0] stops reading: its writes block until the send timeout.
	big := jsonFrame(t, Message{Type: TypeInvocation, Target: "n", Arguments: []any{strings.Repeat("x", 256<<10)}})
	for range 64 {
		conns[0].Send(big)
	}
	h.rec.waitDisconnected(t, conns[0], 5*time.Second)
	for _, ws := range clients[1:] {
		_ = ws.Close()
	}
	eventually(t, "no writer goroutines left", func() bool { all, _ := writerGoroutines(); return all == 0 })
	h.ep.writers.mu.Lock()
	defer h.ep.writers.mu.Unlock()
	if h.ep.writers.running != 0 || len(h.ep.writers.queue) != 0 {
		t.Fatalf("pool: %d running, %d queued; want none", h.ep.writers.running, len(h.ep.writers.queue))
	}
}
