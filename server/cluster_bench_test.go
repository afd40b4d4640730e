package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"notifyhub/notify/redistest"
	"notifyhub/server"
	"notifyhub/testclient"
)

// Publish → receive through the whole hub (publish API, backplane, fan-out,
// WebSocket) on one node and across two nodes sharing Redis, on loopback:
//
//	go test -run '^$' -bench 'PublishToReceive' -benchtime 1000x -count 5 ./server
//	go test -run '^$' -bench 'Throughput' -benchtime 200000x -count 5 ./server
//
// Latency is one notification at a time (publish, wait until the client has
// it), reported as p50/p99 in microseconds. Throughput is four publishers
// posting batches of 100 as fast as the hub accepts them, to one subscriber;
// notes/s counts notifications the subscriber received.

// benchTopology names where the publisher and the subscriber are.
type benchTopology struct {
	name  string
	redis bool
	nodes int // 1: publisher and subscriber on one node; 2: publisher on A, subscriber on B
}

var benchTopologies = []benchTopology{
	{"memory-one-node", false, 1},
	{"redis-same-node", true, 1},
	{"redis-cross-node", true, 2},
}

// benchNode is a hub started for a benchmark (the test helpers want a
// *testing.T).
type benchNode struct {
	srv *server.Server
	pub *testclient.Publisher
}

func startBenchHub(b *testing.B, redisURL string) *benchNode {
	b.Helper()
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	cfg.RedisURL = redisURL
	cfg.QueueLength = 1 << 16 // measure the hub, not the slow-consumer limit
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("start hub: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	tok, err := server.MintToken(testSecret, server.TokenRequest{Subject: "backend", Scopes: []string{cfg.PublishScope}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	n := &benchNode{srv: srv, pub: &testclient.Publisher{BaseURL: srv.InternalURL(), Token: tok}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(srv.HubURL() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("hub not ready within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscriber connects a client of tenant "bench" subscribed to licences.
func (n *benchNode) subscriber(b *testing.B, opts testclient.Options) *testclient.Client {
	b.Helper()
	tok, err := server.MintToken(testSecret, server.TokenRequest{Subject: "u", Tenant: "bench", Scopes: []string{"notifications.subscribe"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	opts.Token = tok
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, n.srv.HubURL()+server.HubPath, opts)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Subscribe(ctx, licences); err != nil {
		b.Fatalf("subscribe: %v", err)
	}
	return c
}

// benchNodes starts the topology and returns the publishing and the
// subscribing node.
func benchNodes(b *testing.B, top benchTopology) (pub, sub *benchNode) {
	b.Helper()
	if !top.redis {
		n := startBenchHub(b, "")
		return n, n
	}
	r := redistest.Start(b)
	nodes := make([]*benchNode, top.nodes)
	for i := range nodes {
		nodes[i] = startBenchHub(b, r.URL())
	}
	return nodes[0], nodes[len(nodes)-1]
}

func BenchmarkPublishToReceive(b *testing.B) {
	for _, top := range benchTopologies {
		b.Run(top.name, func(b *testing.B) {
			pub, sub := benchNodes(b, top)
			c := sub.subscriber(b, testclient.Options{})
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				res, err := pub.pub.Publish(ctx, "bench", licence(fmt.Sprint(i)))
				if err != nil || res.Status != http.StatusAccepted {
					b.Fatalf("publish: %v %d %s", err, res.Status, res.Error)
				}
				select {
				case ev := <-c.Events():
					lat = append(lat, ev.Received.Sub(start))
				case <-time.After(5 * time.Second):
					b.Fatalf("notification %d not received within 5s", i)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func BenchmarkThroughput(b *testing.B) {
	const publishers, batchSize = 4, 100
	for _, top := range benchTopologies {
		b.Run(top.name, func(b *testing.B) {
			pub, sub := benchNodes(b, top)
			var received atomic.Int64
			all := make(chan struct{})
			total := int64(max(1, b.N/batchSize)) * batchSize
			c := sub.subscriber(b, testclient.Options{OnEvent: func(testclient.Event) {
				if received.Add(1) == total {
					close(all)
				}
			}})
			batch := make([]any, batchSize)
			for i := range batch {
				batch[i] = licence(fmt.Sprint(i))
			}
			body, err := jsonMarshal(batch)
			if err != nil {
				b.Fatal(err)
			}
			batches := make(chan struct{}, total/batchSize)
			for range total / batchSize {
				batches <- struct{}{}
			}
			close(batches)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range batches {
						res, err := pub.pub.Publish(context.Background(), "bench", body)
						if err != nil || res.Status != http.StatusAccepted {
							b.Errorf("publish: %v %d %s", err, res.Status, res.Error)
							return
						}
					}
				}()
			}
			wg.Wait()
			select {
			case <-all:
			case <-c.Done():
				b.Fatalf("subscriber disconnected after %d of %d", received.Load(), total)
			case <-time.After(30 * time.Second):
				b.Fatalf("received %d of %d within 30s", received.Load(), total)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(total)/elapsed.Seconds(), "notes/s")
		})
	}
}
