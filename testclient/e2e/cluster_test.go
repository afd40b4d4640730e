package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"notifyhub/notify/redistest"
	"notifyhub/server"
)

// TestOfficialClientCluster runs cluster.e2e.mjs against two in-process
// hubs that share a throwaway redis-server (the Redis backplane): node A
// is the suite's usual NOTIFYHUB_URL, node B is NOTIFYHUB_CLUSTER_B_URL.
func TestOfficialClientCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the official-client end-to-end suite does not run in -short mode")
	}
	node, npm := requireTool(t, "node"), requireTool(t, "npm")
	requireNodeMajor(t, node, 20)
	redis := redistest.Start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	installDeps(t, ctx, npm)
	a := startClusterNode(t, ctx, redis.URL(), "A")
	b := startClusterNode(t, ctx, redis.URL(), "B")

	runNode(t, ctx, node, []string{"cluster.e2e.mjs"},
		"NOTIFYHUB_URL="+a.HubURL(),
		"NOTIFYHUB_INTERNAL_URL="+a.InternalURL(),
		"NOTIFYHUB_CLUSTER_B_URL="+b.HubURL(),
		"NOTIFYHUB_CLUSTER_B_INTERNAL_URL="+b.InternalURL(),
	)
}

// startClusterNode starts a hub on the Redis at redisURL and waits until it
// is ready, that is connected to Redis; its log is shown if the test failed.
func startClusterNode(t *testing.T, ctx context.Context, redisURL, name string) *server.Server {
	t.Helper()
	var logs syncBuffer
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", jwtSecret
	cfg.RedisURL = redisURL
	srv, err := server.Start(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("node %s shutdown: %v", name, err)
		}
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(srv.HubURL() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return srv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready within 15s (last: %v)", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
