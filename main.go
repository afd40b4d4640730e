// Command notifyhub runs the notification hub: `go run .` starts one node with
// the embedded defaults (and, with no JWT key configured, a dev mode that
// prints ready-to-use tokens). Configuration is the HUB_* environment; see
// README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"notifyhub/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "notifyhub:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := server.FromEnv(server.DefaultConfig(), os.Getenv)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("HUB_LOG_LEVEL: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dev := cfg.DevMode()
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("notifyhub started", "hub", srv.HubURL()+server.HubPath, "internal", srv.InternalURL())
	if dev {
		if err := printDevBanner(srv); err != nil {
			return err
		}
	}
	<-ctx.Done()
	stop()
	log.Info("shutting down", "drain_timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// printDevBanner prints tokens for a quick start. Dev mode signs them with a
// random secret that dies with the process.
func printDevBanner(srv *server.Server) error {
	cfg := srv.Config()
	client, err := server.MintToken(cfg.JWTSecret, server.TokenRequest{Subject: "dev-user", Tenant: "dev-tenant", Scopes: []string{cfg.ClientScope}, TTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	publisher, err := server.MintToken(cfg.JWTSecret, server.TokenRequest{Subject: "dev-publisher", Scopes: []string{cfg.PublishScope}, TTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	admin, err := server.MintToken(cfg.JWTSecret, server.TokenRequest{Subject: "dev-admin", Tenant: "dev-tenant", Scopes: []string{cfg.AdminScope, cfg.ClientScope}, TTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	fmt.Printf(`
=== notifyhub DEV MODE: no HUB_JWT_SECRET or HUB_JWT_PUBLIC_KEY_FILE set ===
Tokens below are signed with a random secret and valid for 24 h, for tenant "dev-tenant".

Hub URL:          %[1]s%[2]s
Client token:     %[3]s
Publisher token:  %[4]s

Connect (JavaScript):
  new signalR.HubConnectionBuilder().withUrl("%[1]s%[2]s", { accessTokenFactory: () => "<client token>" }).build()

Publish:
  curl -i -X POST %[5]s/internal/v1/tenants/dev-tenant/notifications \
    -H "Authorization: Bearer %[4]s" -H "Content-Type: application/json" \
    -d '{"e":"portos.licence.activated","p":{"licence":"demo"}}'

Event streaming (admin token: %[6]s):
  curl %[1]s/events/connection_token -H "Authorization: Bearer %[3]s"
  curl %[1]s/events/subscription_token -X GET -H "Authorization: Bearer %[3]s" \
    -H "Content-Type: application/json" --data '{"channel":"shipments:dev-tenant#dev-user"}'
  curl %[1]s/events/provision -H "Authorization: Bearer %[6]s"
  curl %[1]s/events/deprovision -H "Authorization: Bearer %[6]s"

`, srv.HubURL(), server.HubPath, client, publisher, srv.InternalURL(), admin)
	return nil
}
