package signalr

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteSSEEvent(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"{\"type\":6}\x1e", "data: {\"type\":6}\x1e\r\n\r\n"},
		{"{}\x1e{\"type\":6}\x1e", "data: {}\x1e{\"type\":6}\x1e\r\n\r\n"},
		{"a\nb", "data: a\r\ndata: b\r\n\r\n"},
		{"a\r\nb\r\n", "data: a\r\ndata: b\r\n\r\n"},
		{"a\n\nb", "data: a\r\ndata: \r\ndata: b\r\n\r\n"},
	} {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeSSEEvent(w, []byte(tt.in)); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		if buf.String() != tt.want {
			t.Errorf("event for %q = %q, want %q", tt.in, buf.String(), tt.want)
		}
	}
}

// sseReader reads raw event-stream bytes from a response.
type sseReader struct {
	t  *testing.T
	br *bufio.Reader
}

// event reads up to and including the next blank line.
func (r *sseReader) event() string {
	r.t.Helper()
	var ev strings.Builder
	for {
		line, err := r.br.ReadString('\n')
		ev.WriteString(line)
		if err != nil {
			r.t.Fatalf("event stream ended: %v (after %q)", err, ev.String())
		}
		if line == "\r\n" {
			return ev.String()
		}
	}
}

func TestServerSentEvents(t *testing.T) {
	h := startTestHub(t, Options{KeepAliveInterval: time.Hour})
	tok := h.token(t)
	res := h.openSSE(t, tok)
	for k, want := range map[string]string{
		"Content-Type":     "text/event-stream",
		"Cache-Control":    "no-cache,no-store",
		"Pragma":           "no-cache",
		"Content-Encoding": "identity",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	r := &sseReader{t: t, br: bufio.NewReader(res.Body)}
	// The comment arrives before the client has sent anything: flushed at once.
	if first, err := r.br.ReadString('\n'); err != nil || first != ":\r\n" {
		t.Fatalf("first line %q (%v), want the comment \":\\r\\n\"", first, err)
	}

	h.post(t, tok, handshakeJSON)
	if ev := r.event(); ev != "data: {}\x1e\r\n\r\n" {
		t.Fatalf("handshake event %q", ev)
	}
	conn := h.rec.nextConn(t)
	if conn.Transport() != ServerSentEvents {
		t.Fatalf("Transport() = %q", conn.Transport())
	}

	// An invocation POSTed (split over two requests) is answered on the stream.
	inv := "{\"type\":1,\"invocationId\":\"7\",\"target\":\"Echo\",\"arguments\":[\"hi\"]}\x1e"
	h.post(t, tok, inv[:20])
	h.post(t, tok, inv[20:])
	if ev := r.event(); ev != "data: {\"type\":3,\"invocationId\":\"7\",\"result\":\"hi\"}\x1e\r\n\r\n" {
		t.Fatalf("completion event %q", ev)
	}

	conn.Send(call(t, 1))
	if ev := r.event(); ev != "data: "+callText(1)+"\x1e\r\n\r\n" {
		t.Fatalf("invocation event %q", ev)
	}

	// The server closes: Close message, then the stream ends.
	conn.Close("", true)
	if ev := r.event(); ev != "data: {\"type\":7,\"allowReconnect\":true}\x1e\r\n\r\n" {
		t.Fatalf("close event %q", ev)
	}
	if rest, _ := io.ReadAll(r.br); len(rest) != 0 {
		t.Fatalf("after the Close event: %q", rest)
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	res2, _ := h.do(t, http.MethodPost, h.connURL("id="+tok), nil, "{\"type\":6}\x1e")
	if res2.StatusCode != http.StatusNotFound {
		t.Fatalf("POST after the end: %d, want 404", res2.StatusCode)
	}
}

func TestServerSentEventsPingsAndRefusesMessagePack(t *testing.T) {
	h := startTestHub(t, Options{KeepAliveInterval: 30 * time.Millisecond})
	tok := h.token(t)
	r := &sseReader{t: t, br: bufio.NewReader(h.openSSE(t, tok).Body)}
	h.post(t, tok, handshakeJSON)
	h.rec.nextConn(t)
	if ev := r.event(); ev != ":\r\ndata: {}\x1e\r\n\r\n" {
		t.Fatalf("comment and handshake: %q", ev)
	}
	if ev := r.event(); ev != "data: {\"type\":6}\x1e\r\n\r\n" {
		t.Fatalf("want a ping event, got %q", ev)
	}

	tok = h.token(t)
	r = &sseReader{t: t, br: bufio.NewReader(h.openSSE(t, tok).Body)}
	h.post(t, tok, handshakeMsgpack)
	want := ":\r\ndata: {\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}\x1e\r\n\r\n"
	if ev := r.event(); ev != want {
		t.Fatalf("msgpack handshake over SSE: %q, want %q", ev, want)
	}
}

func TestServerSentEventsClientGoneEndsConnection(t *testing.T) {
	h := startTestHub(t, Options{KeepAliveInterval: 20 * time.Millisecond})
	tok := h.token(t)
	res := h.openSSE(t, tok)
	h.post(t, tok, handshakeJSON)
	conn := h.rec.nextConn(t)
	res.Body.Close() // the client goes away without a word; the pings fail to write
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if h.ep.Len() != 0 {
		t.Fatalf("%d connections left", h.ep.Len())
	}
}

func TestConcurrentPostsAreSerialised(t *testing.T) {
	h := startTestHub(t, Options{})
	tok := h.token(t)
	h.openSSE(t, tok)
	h.post(t, tok, handshakeJSON)
	h.rec.nextConn(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.post(t, tok, fmt.Sprintf("{\"type\":1,\"target\":\"Count\",\"arguments\":[%d]}\x1e", i))
		}()
	}
	wg.Wait()
	if got := h.rec.calls.Load(); got != n {
		t.Fatalf("%d invocations ran, want %d", got, n)
	}
}
