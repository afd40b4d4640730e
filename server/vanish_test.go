package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"notifyhub/server"
)

// httpConn is a client of the HTTP transports driven by hand, so that it can
// vanish the way real ones do: stop polling, or drop the SSE stream.
type httpConn struct {
	t     *testing.T
	env   *hubEnv
	tok   string
	id    string
	close func() // ends the SSE stream (nil for long polling)
}

// openHTTPConn negotiates, starts the transport, handshakes and subscribes.
func (e *hubEnv) openHTTPConn(transport string) *httpConn {
	e.t.Helper()
	c := &httpConn{t: e.t, env: e, tok: e.clientToken("vanish")}
	c.id = e.negotiate(c.tok)
	url := e.hubURL() + "?id=" + c.id
	switch transport {
	case "LongPolling":
		resp := e.httpDo(context.Background(), http.MethodGet, url, c.tok, "")
		resp.Body.Close()
	case "ServerSentEvents":
		ctx, cancel := context.WithCancel(context.Background())
		resp := e.httpDo(ctx, http.MethodGet, url, c.tok, "", "Accept", "text/event-stream")
		c.close = func() { cancel(); resp.Body.Close() }
		go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body)) }()
	}
	send := "{\"protocol\":\"json\",\"version\":1}\x1e" +
		"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Subscribe\",\"arguments\":[{\"e\":\"portos.licence.activated\"}]}\x1e"
	resp := e.httpDo(context.Background(), http.MethodPost, url, c.tok, send)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("send: %d", resp.StatusCode)
	}
	return c
}

// keepPolling polls c's long-polling connection with client until stop is
// closed, as a live client does; the connection cannot be reaped meanwhile.
func (c *httpConn) keepPolling(client *http.Client, stop <-chan struct{}) {
	url := c.env.hubURL() + "?id=" + c.id
	for {
		select {
		case <-stop:
			return
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+c.tok)
		resp, err := client.Do(req)
		if err != nil {
			c.t.Errorf("poll: %v", err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.t.Errorf("poll of a live connection: %d", resp.StatusCode)
			return
		}
	}
}

// Clients of the HTTP transports that vanish are reaped after the disconnect
// timeout, and their connections, subscriptions and memory are released.
func TestVanishedHTTPClientsAreReaped(t *testing.T) {
	env := startHub(t, func(c *server.Config) {
		c.DisconnectTimeout = time.Second
		c.PollTimeout = 200 * time.Millisecond
		// A dropped SSE stream shows when the next write fails: a ping at the latest.
		c.KeepAliveInterval = 500 * time.Millisecond
	})
	const each = 20
	// Two collections: what sync.Pools hold (fasthttp's request contexts
	// and buffers) survives the first.
	runtime.GC()
	baseHeap := heapInUse()
	var conns []*httpConn
	// The long-polling clients poll until they vanish, all at once, so that
	// however long opening the others takes, none is reaped before.
	stop := make(chan struct{})
	pollers := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: each}}
	var polling sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		polling.Wait()
	}()
	for i := range 2 * each {
		c := env.openHTTPConn([]string{"LongPolling", "ServerSentEvents"}[i%2])
		conns = append(conns, c)
		if c.close == nil {
			polling.Add(1)
			go func() { defer polling.Done(); c.keepPolling(pollers, stop) }()
		}
	}
	waitFor(t, func() bool { return metricValue(t, env, "notifyhub_subscriptions") == 2*each })
	close(stop) // the long-polling clients stop polling
	polling.Wait()
	pollers.CloseIdleConnections()
	for _, c := range conns {
		if c.close != nil {
			c.close() // the SSE clients go away
		}
	}
	waitFor(t, func() bool {
		return metricValue(t, env, "notifyhub_subscriptions") == 0 &&
			metricValue(t, env, `notifyhub_connections{protocol="json",transport="LongPolling"}`) == 0 &&
			metricValue(t, env, `notifyhub_connections{protocol="json",transport="ServerSentEvents"}`) == 0
	})
	// A poll for a reaped connection is told it is over.
	resp := env.httpDo(context.Background(), http.MethodGet, env.hubURL()+"?id="+conns[0].id, conns[0].tok, "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("poll of a reaped connection: %d, want 204 or 404", resp.StatusCode)
	}
	runtime.GC()
	if grown := heapInUse() - baseHeap; grown > 2<<20 {
		t.Errorf("heap grew by %d KiB after %d reaped connections", grown>>10, 2*each)
	}
}
