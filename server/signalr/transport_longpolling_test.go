package signalr

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// pollResult is one long poll's answer.
type pollResult struct {
	status      int
	contentType string
	body        string
	took        time.Duration
}

func (h *testHub) poll(t *testing.T, token string) pollResult {
	t.Helper()
	start := time.Now()
	res, body := h.do(t, http.MethodGet, h.connURL("id="+token+"&_=1"), nil, "")
	return pollResult{res.StatusCode, res.Header.Get("Content-Type"), body, time.Since(start)}
}

// pollAsync starts a poll and returns where its result will arrive.
func (h *testHub) pollAsync(t *testing.T, token string) <-chan pollResult {
	ch := make(chan pollResult, 1)
	go func() { ch <- h.poll(t, token) }()
	return ch
}

// pending waits until the long-polling connection of token has a poll held.
func (h *testHub) pending(t *testing.T, token string) {
	t.Helper()
	eventually(t, "poll pending", func() bool {
		c, _ := h.ep.lookup(token)
		_, _, tr := c.snapshot()
		lp, ok := tr.(*lpTransport)
		return ok && lp.idle(time.Now()) == 0
	})
}

func receivePoll(t *testing.T, ch <-chan pollResult) pollResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the poll did not complete within 5s")
		return pollResult{}
	}
}

// startLongPolling negotiates, starts the transport and completes the JSON
// handshake.
func (h *testHub) startLongPolling(t *testing.T, handshake string) (string, *Conn) {
	t.Helper()
	tok := h.token(t)
	start := time.Now()
	h.startLP(t, tok)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the first poll took %v: it must return at once", took)
	}
	h.post(t, tok, handshake)
	if r := h.poll(t, tok); r.status != 200 || r.body != "{}\x1e" || r.contentType != "application/octet-stream" {
		t.Fatalf("handshake poll: %+v", r)
	}
	return tok, h.rec.nextConn(t)
}

func TestLongPolling(t *testing.T) {
	h := startTestHub(t, Options{PollTimeout: 5 * time.Second, KeepAliveInterval: 10 * time.Millisecond})
	tok, conn := h.startLongPolling(t, handshakeJSON)
	if conn.Transport() != LongPolling {
		t.Fatalf("Transport() = %q", conn.Transport())
	}

	// A held poll completes as soon as frames are queued, with all of them.
	ch := h.pollAsync(t, tok)
	h.pending(t, tok)
	conn.Send(call(t, 1))
	r := receivePoll(t, ch)
	if r.status != 200 || r.body != callText(1)+"\x1e" || r.contentType != "application/octet-stream" {
		t.Fatalf("poll with data: %+v", r)
	}
	conn.Send(call(t, 2))
	conn.Send(call(t, 3))
	if r := h.poll(t, tok); r.body != callText(2)+"\x1e"+callText(3)+"\x1e" {
		t.Fatalf("queued frames come in one response: %+v", r)
	}

	// Invocations arrive by POST and are answered in the next poll.
	h.post(t, tok, "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"x\"]}\x1e")
	if r := h.poll(t, tok); r.body != "{\"type\":3,\"invocationId\":\"1\",\"result\":\"x\"}\x1e" {
		t.Fatalf("completion poll: %+v", r)
	}

	// A newer poll replaces the pending one, which completes with 204.
	first := h.pollAsync(t, tok)
	h.pending(t, tok)
	second := h.pollAsync(t, tok)
	if r := receivePoll(t, first); r.status != http.StatusNoContent {
		t.Fatalf("replaced poll: %+v, want 204", r)
	}
	conn.Send(call(t, 4))
	if r := receivePoll(t, second); r.status != 200 || r.body != callText(4)+"\x1e" {
		t.Fatalf("newer poll: %+v", r)
	}

	// DELETE ends the connection: 202, the pending poll gets 204, and so do
	// later polls.
	ch = h.pollAsync(t, tok)
	h.pending(t, tok)
	if res, _ := h.do(t, http.MethodDelete, h.connURL("id="+tok), nil, ""); res.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %d, want 202", res.StatusCode)
	}
	if r := receivePoll(t, ch); r.status != http.StatusNoContent {
		t.Fatalf("pending poll after DELETE: %+v, want 204", r)
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if r := h.poll(t, tok); r.status != http.StatusNoContent {
		t.Fatalf("poll after DELETE: %+v, want 204", r)
	}
}

func TestLongPollingTimeoutAndNoPings(t *testing.T) {
	h := startTestHub(t, Options{PollTimeout: 150 * time.Millisecond, KeepAliveInterval: 10 * time.Millisecond})
	tok, _ := h.startLongPolling(t, handshakeJSON)
	// Long polling carries no pings: with nothing to send, polls time out empty.
	for range 2 {
		r := h.poll(t, tok)
		if r.status != 200 || r.body != "" || r.took < 100*time.Millisecond {
			t.Fatalf("poll timeout: %+v, want 200 and no body after the PollTimeout", r)
		}
	}
}

func TestLongPollingServerCloseThen204(t *testing.T) {
	h := startTestHub(t, Options{PollTimeout: 5 * time.Second})
	tok, conn := h.startLongPolling(t, handshakeJSON)
	conn.Close("bye", false)
	if r := h.poll(t, tok); r.status != 200 || r.body != "{\"type\":7,\"error\":\"bye\"}\x1e" {
		t.Fatalf("close poll: %+v", r)
	}
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if r := h.poll(t, tok); r.status != http.StatusNoContent {
		t.Fatalf("poll after the close: %+v, want 204", r)
	}
	if res, _ := h.do(t, http.MethodPost, h.connURL("id="+tok), nil, "{\"type\":6}\x1e"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("POST after the close: %d, want 404", res.StatusCode)
	}
}

// lastPollEnd returns when the last poll of the long-polling connection of
// token ended, as the reaper counts it.
func (h *testHub) lastPollEnd(t *testing.T, token string) time.Time {
	t.Helper()
	c, _ := h.ep.lookup(token)
	_, _, tr := c.snapshot()
	lp := tr.(*lpTransport)
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.lastSeen
}

func TestLongPollingClientThatStopsPollingIsReaped(t *testing.T) {
	// The ended connection is remembered (polls get 204) for the
	// DisconnectTimeout after it is reaped: a second is room enough to poll
	// it on a loaded machine, and short enough to see it forgotten.
	const disconnect = time.Second
	h := startTestHub(t, Options{PollTimeout: 5 * time.Second, DisconnectTimeout: disconnect})
	tok, conn := h.startLongPolling(t, handshakeJSON)
	// Measured from the end of the last poll, as the reaper does, and not
	// from when this goroutine got to run.
	lastPoll := h.lastPollEnd(t, tok)
	h.rec.waitDisconnected(t, conn, 5*time.Second)
	if absent := time.Since(lastPoll); absent < disconnect {
		t.Fatalf("reaped %v after the last poll, before the DisconnectTimeout", absent)
	}
	if h.ep.Len() != 0 {
		t.Fatalf("%d connections left", h.ep.Len())
	}
	if r := h.poll(t, tok); r.status != http.StatusNoContent {
		t.Fatalf("poll of the reaped connection: %+v, want 204", r)
	}
	// Once the DisconnectTimeout has passed again, the id is unknown.
	eventually(t, "ended connection forgotten", func() bool { _, ended := h.ep.lookup(tok); return !ended })
	if r := h.poll(t, tok); r.status != http.StatusNotFound {
		t.Fatalf("late poll: %+v, want 404", r)
	}
}

func TestLongPollingKeepsAClientThatPolls(t *testing.T) {
	// Only the gaps between polls count as absence, and they are short: the
	// DisconnectTimeout leaves a second for each, so a slow machine (GC,
	// -race, a busy CPU) does not reap the client, while polling goes on for
	// well over the DisconnectTimeout.
	const disconnect, pollFor = time.Second, 2 * time.Second
	h := startTestHub(t, Options{PollTimeout: 200 * time.Millisecond, DisconnectTimeout: disconnect})
	tok, conn := h.startLongPolling(t, handshakeJSON)
	start, polls := time.Now(), 0
	for time.Since(start) < pollFor {
		if r := h.poll(t, tok); r.status != 200 || r.body != "" {
			t.Fatalf("poll %d after %v: %+v, want 200 after the PollTimeout", polls, time.Since(start), r)
		}
		polls++
	}
	select {
	case <-conn.Done():
		t.Fatal("a client that keeps polling was reaped")
	default:
	}
	if h.ep.Len() != 1 {
		t.Fatalf("%d connections, want the polling one", h.ep.Len())
	}
	h.do(t, http.MethodDelete, h.connURL("id="+tok), nil, "") // the drain need not wait for it
}

func TestLongPollingHandshakeTimeout(t *testing.T) {
	h := startTestHub(t, Options{PollTimeout: 5 * time.Second, HandshakeTimeout: 50 * time.Millisecond})
	tok := h.token(t)
	h.startLP(t, tok)
	if r := h.poll(t, tok); r.status != 200 || r.body != "{\"error\":\"Handshake was canceled.\"}\x1e" {
		t.Fatalf("poll: %+v, want the handshake error", r)
	}
	if r := h.poll(t, tok); r.status != http.StatusNoContent {
		t.Fatalf("poll after the handshake error: %+v, want 204", r)
	}
}

func TestLongPollingMessagePack(t *testing.T) {
	h := startTestHub(t, Options{PollTimeout: 5 * time.Second})
	tok, conn := h.startLongPolling(t, handshakeMsgpack)
	frame, err := MessagePackProtocol{}.AppendMessage(nil, &Message{Type: TypeInvocation, Target: "n", Arguments: []any{"héllo", []byte{0, 1, 0x1e, 0xff}}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Send(frame)
	if r := h.poll(t, tok); r.status != 200 || !bytes.Equal([]byte(r.body), frame) {
		t.Fatalf("binary poll: %+v, want % x", r, frame)
	}
	// A binary invocation by POST: [1, {}, "1", "Echo", ["x"]].
	h.post(t, tok, "\x0d\x95\x01\x80\xa11\xa4Echo\x91\xa1x")
	var m Message
	r := h.poll(t, tok)
	if _, err := (MessagePackProtocol{}).ReadMessage([]byte(r.body), 1<<10, &m); err != nil || m.Type != TypeCompletion || m.InvocationID != "1" {
		t.Fatalf("binary completion %+v: %v (% x)", m, err, r.body)
	}
}
