package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"notifyhub/server"
)

func TestServeTmp(t *testing.T) {
	if os.Getenv("SERVE_TMP") == "" {
		t.Skip()
	}
	cfg := server.DefaultConfig()
	cfg.HubAddr = "127.0.0.1:0"
	cfg.InternalAddr = "127.0.0.1:0"
	cfg.JWTSecret = jwtSecret
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile("/tmp/hub.env", []byte(fmt.Sprintf("export NOTIFYHUB_URL=%s NOTIFYHUB_INTERNAL_URL=%s NOTIFYHUB_JWT_SECRET=%s\n", srv.HubURL(), srv.InternalURL(), jwtSecret)), 0o644)
	time.Sleep(30 * time.Minute)
}
