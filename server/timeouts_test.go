package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"notifyhub/server"
	"notifyhub/testclient"
)

const (
	testReadTimeout = 300 * time.Millisecond
	testIdleTimeout = 500 * time.Millisecond
)

func startHubWithTimeouts(t *testing.T, mutate ...func(*server.Config)) *hubEnv {
	return startHub(t, append([]func(*server.Config){func(c *server.Config) {
		c.ReadTimeout, c.IdleTimeout = testReadTimeout, testIdleTimeout
	}}, mutate...)...)
}

// closedByServer reports how long the server took to end conn (EOF or a
// reset), or fails if it is still open after 5s.
func closedByServer(t *testing.T, conn net.Conn, since time.Time) time.Duration {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, conn) // a 408 may come first
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection is still open after %v", time.Since(since).Round(time.Millisecond))
	}
	return time.Since(since)
}

// A client that opens a socket and sends nothing, part of a request line,
// or drips its headers, is disconnected after the read timeout; a
// keep-alive connection left idle, after the idle timeout. On both
// listeners.
func TestListenersDropSilentAndSlowClients(t *testing.T) {
	env := startHubWithTimeouts(t)
	listeners := map[string]string{
		"public":   strings.TrimPrefix(env.srv.HubURL(), "http://"),
		"internal": strings.TrimPrefix(env.srv.InternalURL(), "http://"),
	}
	scenarios := []struct {
		name    string
		timeout time.Duration
		client  func(t *testing.T, conn net.Conn, stop <-chan struct{})
	}{
		{"sends nothing", testReadTimeout, func(*testing.T, net.Conn, <-chan struct{}) {}},
		{"partial request line", testReadTimeout, func(t *testing.T, conn net.Conn, _ <-chan struct{}) {
			if _, err := io.WriteString(conn, "GET /healthz HT"); err != nil {
				t.Error(err)
			}
		}},
		{"drips headers", testReadTimeout, func(t *testing.T, conn net.Conn, stop <-chan struct{}) {
			go func() { // one byte of a never-ending header every 20ms
				_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
						if _, err := io.WriteString(conn, "a"); err != nil {
							return
						}
					}
				}
			}()
		}},
		{"idle keep-alive", testIdleTimeout, func(t *testing.T, conn net.Conn, _ <-chan struct{}) {
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("first request: %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
			}
		}},
	}
	for name, addr := range listeners {
		for _, sc := range scenarios {
			t.Run(name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				stop := make(chan struct{})
				defer close(stop)
				start := time.Now()
				sc.client(t, conn, stop)
				if took := closedByServer(t, conn, start); took < sc.timeout/2 {
					t.Fatalf("closed after %v, well before the timeout (%v)", took, sc.timeout)
				}
			})
		}
	}
}

// The read timeout covers reading a request, not answering it: a long
// poll held, an SSE stream and a WebSocket outlive both timeouts.
func TestListenerTimeoutsSpareLongLivedTransports(t *testing.T) {
	const outlive = 3 * testIdleTimeout // longer than both timeouts
	env := startHubWithTimeouts(t, func(c *server.Config) {
		c.PollTimeout = outlive
		c.KeepAliveInterval = 100 * time.Millisecond
		c.DisconnectTimeout = 10 * time.Second
	})

	t.Run("LongPolling", func(t *testing.T) {
		t.Parallel()
		c := env.openHTTPConn("LongPolling")
		// The first polls return what is queued (the handshake and the
		// Subscribe's completion); then two polls in a row are held for
		// the PollTimeout on the kept-alive connection, and end empty.
		held := 0
		for i := 0; held < 2; i++ {
			if i == 5 {
				t.Fatalf("%d polls, %d of them held", i, held)
			}
			start := time.Now()
			resp := env.httpDo(context.Background(), http.MethodGet, env.hubURL()+"?id="+c.id, c.tok, "")
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("poll: %d %q %v", resp.StatusCode, body, err)
			}
			if len(body) == 0 {
				if took := time.Since(start); took < outlive/2 {
					t.Fatalf("an empty poll returned after %v, before the PollTimeout (%v)", took, outlive)
				}
				held++
			}
		}
		env.status(http.MethodDelete, env.hubURL()+"?id="+c.id, c.tok, "") // not left for the shutdown to wait for
	})

	t.Run("ServerSentEvents", func(t *testing.T) {
		t.Parallel()
		tok := env.clientToken("sse")
		id := env.negotiate(tok)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := env.httpDo(ctx, http.MethodGet, env.hubURL()+"?id="+id, tok, "", "Accept", "text/event-stream")
		defer resp.Body.Close()
		send := env.httpDo(context.Background(), http.MethodPost, env.hubURL()+"?id="+id, tok, "{\"protocol\":\"json\",\"version\":1}\x1e")
		send.Body.Close()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done(): // the test has returned
					return
				}
			}
		}()
		start := time.Now()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the stream ended after %v", time.Since(start))
				}
				if strings.HasPrefix(l, "data: {\"type\":6") && time.Since(start) > outlive {
					return // a ping after both timeouts
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no ping within 5s")
			}
		}
	})

	t.Run("WebSockets", func(t *testing.T) {
		t.Parallel()
		c := env.dial("ws", testclient.Options{})
		time.Sleep(outlive) // what is tested is that nothing happens meanwhile
		env.subscribe(c, licences)
		env.publish("ws", licence("after"))
		if m := next(t, c); ref(m) != "after" {
			t.Fatalf("got %v", m)
		}
	})
}
