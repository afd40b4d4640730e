package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/server/signalr"
	"notifyhub/testclient"
)

// BenchmarkFanoutWebSocket is the whole fan-out over real sockets on
// loopback: one publish request per op, delivered to every subscriber's
// WebSocket and read by the Go client. It measures the hub and the clients
// together (they share the machine), so ns/delivery is an upper bound of the
// hub's cost; the load tool (testclient/cmd/bench) measures the hub process
// alone.
//
//	go test -run '^$' -bench FanoutWebSocket -benchmem ./server
func BenchmarkFanoutWebSocket(b *testing.B) {
	for _, proto := range []signalr.Protocol{signalr.JSONProtocol{}, signalr.MessagePackProtocol{}} {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", proto.Name(), n), func(b *testing.B) {
				benchFanout(b, proto, n)
			})
		}
	}
}

func benchFanout(b *testing.B, proto signalr.Protocol, subscribers int) {
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	cfg.MaxConnectionsPerUser = 0
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	token, err := server.MintToken(testSecret, server.TokenRequest{Subject: "bench", Tenant: "t1", Scopes: []string{cfg.ClientScope}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	pubToken, err := server.MintToken(testSecret, server.TokenRequest{Subject: "backend", Scopes: []string{cfg.PublishScope}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	var received atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < subscribers; i++ {
		c, err := testclient.Dial(ctx, srv.HubURL()+server.HubPath, testclient.Options{
			Token: token, Protocol: proto, SkipNegotiation: true,
			OnEvent: func(testclient.Event) { received.Add(1) },
		})
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		if err := c.Subscribe(ctx, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated}); err != nil {
			b.Fatal(err)
		}
	}
	pub := &testclient.Publisher{BaseURL: srv.InternalURL(), Token: pubToken}
	body := func(i int) []byte {
		return []byte(`{"e":"` + payloads.EventLicenceActivated + `","r":"` + strconv.Itoa(i) + `","p":{"licence":"bench","pad":"0123456789abcdef0123456789abcdef"}}`)
	}
	publish := func(i int, want int64) {
		res, err := pub.Publish(ctx, "t1", body(i))
		if err != nil || res.Status != 202 {
			b.Fatalf("publish: %v %+v", err, res)
		}
		for received.Load() < want {
			if ctx.Err() != nil {
				b.Fatalf("received %d of %d", received.Load(), want)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	publish(-1, int64(subscribers)) // every connection is subscribed and warm
	received.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(i, int64(subscribers)*int64(i+1))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/delivery")
	b.ReportMetric(float64(subscribers)*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
