// Package e2e drives the hub with the official SignalR JavaScript client
// (@microsoft/signalr and @microsoft/signalr-protocol-msgpack) so that
// compatibility with the stock client is checked by `go test ./...`.
//
// TestOfficialClient starts the hub in-process and runs the *.test.mjs files in
// this directory with Node's built-in test runner. To run them against a hub
// started by hand instead, set NOTIFYHUB_URL, NOTIFYHUB_INTERNAL_URL and
// NOTIFYHUB_JWT_SECRET and run `npm test` here.
package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"notifyhub/server"
)

// jwtSecret is the HS256 secret the in-process hub verifies tokens with and
// the JS helpers mint them with.
const jwtSecret = "e2e-secret-not-for-production-7f3a9c2e"

func TestOfficialClient(t *testing.T) {
	if testing.Short() {
		t.Skip("the official-client end-to-end suite does not run in -short mode")
	}
	node, npm := requireTool(t, "node"), requireTool(t, "npm")
	requireNodeMajor(t, node, 20)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	installDeps(t, ctx, npm)
	files, err := filepath.Glob("*.test.mjs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files found (err %v)", err)
	}
	srv := startHub(t, ctx)

	runNode(t, ctx, node, files,
		"NOTIFYHUB_URL="+srv.HubURL(),
		"NOTIFYHUB_INTERNAL_URL="+srv.InternalURL(),
	)
}

// runNode runs node's test runner on files with env (and the hub's JWT
// secret) and fails t if any test fails; node's report goes to the test log.
func runNode(t *testing.T, ctx context.Context, node string, files []string, env ...string) {
	t.Helper()
	args := []string{"--test", "--test-reporter=spec", "--test-concurrency=1", "--test-timeout=60000"}
	if p := os.Getenv("NOTIFYHUB_E2E_PATTERN"); p != "" { // run a subset while working on the suite
		args = append(args, "--test-name-pattern="+p)
	}
	cmd := exec.CommandContext(ctx, node, append(args, files...)...)
	cmd.Env = append(append(os.Environ(), "NOTIFYHUB_JWT_SECRET="+jwtSecret), env...)
	// node --test runs each file in a child process that inherits the output
	// pipes; do not wait forever for them once node itself has been killed.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("node --test did not finish in time: %v", ctx.Err())
	case err != nil:
		t.Fatalf("node --test failed: %v", err)
	}
}

// requireTool finds an executable on PATH. Missing tools skip the suite on a
// developer machine but fail it in CI, where skipping would hide regressions.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found on PATH: CI needs Node.js 20+ and npm for the official SignalR client suite", name)
	}
	t.Skipf("%s not found on PATH: skipping the official SignalR JavaScript client suite (install Node.js 20+ and npm to run it)", name)
	return ""
}

// requireNodeMajor insists on a Node.js whose test runner has the flags used above.
func requireNodeMajor(t *testing.T, node string, min int) {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major >= min {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("node %s is too old: the official SignalR client suite needs Node.js %d+", version, min)
	}
	t.Skipf("node %s is too old: skipping the official SignalR client suite (needs Node.js %d+)", version, min)
}

// installDeps runs `npm ci` unless node_modules is already installed from the
// current package-lock.json (npm writes node_modules/.package-lock.json on install).
func installDeps(t *testing.T, ctx context.Context, npm string) {
	t.Helper()
	lock, err := os.Stat("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if installed, err := os.Stat(filepath.Join("node_modules", ".package-lock.json")); err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("npm ci output:\n%s", out)
		t.Fatalf("npm ci: %v", err)
	}
}

// startHub starts the hub on random loopback ports and shuts it down when the
// test ends; its log is shown only if the test failed.
func startHub(t *testing.T, ctx context.Context) *server.Server {
	t.Helper()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	cfg := server.DefaultConfig()
	cfg.HubAddr = "127.0.0.1:0"
	cfg.InternalAddr = "127.0.0.1:0"
	cfg.JWTSecret = jwtSecret
	// Offer every transport, WebSockets first as clients try them in order.
	cfg.Transports = []string{"WebSockets", "ServerSentEvents", "LongPolling"}
	// The store in a temporary file, and webhooks to the suite's own
	// receivers on 127.0.0.1.
	cfg.StorePath = filepath.Join(t.TempDir(), "notifyhub.db")
	cfg.WebhookAllowPrivate = true
	srv, err := server.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("start hub: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("hub log:\n%s", logs.String())
		}
	})
	return srv
}

// syncBuffer is a bytes.Buffer safe for the hub's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
