package server_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"notifyhub/server"
	"notifyhub/testclient"
)

// TestSoakChurn connects and abandons connections (no close frame, no Close
// message: the TCP connection just goes) while notifications are published
// continuously. Afterwards the hub holds only the steady readers, every
// published notification reached every reader in order, and goroutines and
// heap are back where they started.
func TestSoakChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	// fasthttp's date ticker is process-wide, and its idle-worker cleaner
	// sleeps out its interval after Shutdown: neither belongs to a connection.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
	const readers, churners, churned = 10, 8, 1000

	env := startHub(t)
	defer func() { // before the leak check runs
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = env.srv.Shutdown(ctx)
	}()
	var steady []*testclient.Client
	for range readers {
		c := env.dial("soak", testclient.Options{Events: 1 << 16})
		env.subscribe(c, licences)
		steady = append(steady, c)
	}
	baseHeap := heapInUse()

	var published atomic.Int64
	stop := make(chan struct{})
	var pubDone sync.WaitGroup
	pubDone.Add(1)
	go func() {
		defer pubDone.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var batch []any
			for j := range 10 {
				batch = append(batch, licence(fmt.Sprint(i*10+j)))
			}
			res, err := env.pub.Publish(context.Background(), "soak", batch)
			if err != nil || res.Status != 202 {
				t.Errorf("publish: %v %+v", err, res)
				return
			}
			published.Add(10)
		}
	}()

	url := strings.Replace(env.hubURL(), "http", "ws", 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= churned; n = next.Add(1) {
				// Each churned connection is another device: one user may not
				// open a thousand connections within the disconnect timeout.
				tok, err := server.MintToken(testSecret, server.TokenRequest{Subject: fmt.Sprint("device-", n), Tenant: "soak",
					Scopes: []string{"notifications.subscribe"}, TTL: time.Hour})
				if err != nil {
					t.Errorf("mint: %v", err)
					return
				}
				ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				_ = ws.WriteMessage(websocket.TextMessage, []byte("{\"protocol\":\"json\",\"version\":1}\x1e"+
					"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Subscribe\",\"arguments\":[{\"e\":\"portos.licence.activated\"}]}\x1e"))
				_, _, _ = ws.ReadMessage() // the handshake response
				_ = ws.NetConn().Close()   // vanish: no close frame, no Close message
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubDone.Wait()
	total := int(published.Load())
	if total == 0 {
		t.Fatal("nothing was published")
	}

	for i, c := range steady {
		for n := range total {
			select {
			case ev := <-c.Events():
				var m map[string]any
				if err := ev.Decode(&m); err != nil || ref(m) != fmt.Sprint(n) {
					t.Fatalf("reader %d: notification %d arrived as %v (%v)", i, n, m, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("reader %d received %d of %d notifications", i, n, total)
			}
		}
	}
	waitFor(t, func() bool {
		return metricValue(t, env, `notifyhub_connections{protocol="json",transport="WebSockets"}`) == readers &&
			metricValue(t, env, "notifyhub_subscriptions") == readers
	})
	if grown := heapInUse() - baseHeap; grown > 4<<20 {
		t.Errorf("heap grew by %d KiB over %d abandoned connections", grown>>10, churned)
	}
	t.Logf("%d connections churned, %d notifications to each of %d readers", churned, total, readers)
	for _, c := range steady {
		c.Close()
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
