package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"notifyhub/server"
)

// TestPProfOnlyWhenEnabled: HUB_PPROF=true serves Go's profiles on the
// internal listener, never on the public one, and nothing without it.
func TestPProfOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		cfg, err := server.FromEnv(server.DefaultConfig(), func(name string) string {
			if name == "HUB_PPROF" && enabled {
				return "true"
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
		srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		status := func(url string) int {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		internal := status(srv.InternalURL() + "/debug/pprof/goroutine?debug=1")
		public := status(srv.HubURL() + "/debug/pprof/goroutine?debug=1")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
		if want := map[bool]int{false: 404, true: 200}[enabled]; internal != want || public != 404 {
			t.Errorf("HUB_PPROF=%v: internal %d (want %d), public %d (want 404)", enabled, internal, want, public)
		}
	}
}
