// Package server runs notifyhub: the public listener with the SignalR hub
// and health checks, and the internal listener with the publish API and
// metrics. It wires the wire layer (server/signalr) to the hub core (notify).
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server/signalr"
)

// HubPath is where the main hub is mounted.
const HubPath = "/signalr/v1/mainHub"

// Server is a running notifyhub node.
type Server struct {
	cfg       Config
	log       *slog.Logger
	verifier  *Verifier
	catalogue *payloads.Catalogue
	core      *notify.Hub
	endpoint  *signalr.Endpoint
	metrics   *metrics

	public, internal     *fiber.App
	publicLn, internalLn net.Listener
	cancel               context.CancelFunc
	wg                   sync.WaitGroup
	draining             atomic.Bool
}

// Start builds the hub from cfg and starts both listeners; it returns once
// they accept connections. With no JWT key configured (dev mode) it makes a
// random secret, which DevSecret returns.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.DevMode() {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.JWTSecret = hex.EncodeToString(b)
	}
	verifier, err := NewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	cat, err := payloads.NewCatalogue(cfg.Events, cfg.ResourceEvents)
	if err != nil {
		return nil, fmt.Errorf("event catalogue: %w", err)
	}
	backplane, err := newBackplane(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, verifier: verifier, catalogue: cat}
	m := newMetrics()
	s.metrics = m
	s.core = notify.New(notify.Options{
		Backplane:        backplane,
		MaxSubscriptions: cfg.MaxSubscriptions,
		Metrics:          m,
	})
	m.watchIndex(s.core.Stats)

	protocols := []signalr.Protocol{signalr.JSONProtocol{}}
	hub := newMainHub(s.core, cat, protocols, cfg, m, log)
	s.endpoint, err = signalr.NewEndpoint(signalr.Options{
		Handler: hub,
		Authenticate: func(c *fiber.Ctx) (any, error) {
			p, err := verifier.authenticateClient(c, cfg.ClientScope)
			if err != nil {
				return nil, err
			}
			if err := hub.limits.check(p); err != nil {
				m.Rejected("connection_limit")
				return nil, err
			}
			return &client{principal: p}, nil
		},
		SameUser: func(negotiated, connecting any) bool {
			a, b := negotiated.(*client).principal, connecting.(*client).principal
			return a.Tenant == b.Tenant && a.Subject == b.Subject
		},
		Protocols:         protocols,
		Transports:        cfg.Transports,
		MaxMessageSize:    cfg.MaxMessageSize,
		HandshakeTimeout:  cfg.HandshakeTimeout,
		KeepAliveInterval: cfg.KeepAliveInterval,
		ClientTimeout:     cfg.ClientTimeout,
		QueueLength:       cfg.QueueLength,
		SendTimeout:       cfg.SendTimeout,
		Logger:            log,
		Metrics:           m,
	})
	if err != nil {
		return nil, err
	}

	s.public = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler,
		ReadBufferSize:        16 << 10, // room for a JWT in the query string
	})
	if len(cfg.CORSOrigins) > 0 {
		// The JS client sends credentials by default, so origins are echoed, never "*".
		s.public.Use(cors.New(cors.Config{
			AllowOrigins:     strings.Join(cfg.CORSOrigins, ","),
			AllowCredentials: true,
			AllowMethods:     "GET,POST,DELETE,OPTIONS",
			AllowHeaders:     "Authorization,Content-Type,X-Requested-With,X-SignalR-User-Agent",
		}))
	}
	s.public.Get("/healthz", s.healthz)
	s.public.Get("/readyz", s.readyz)
	s.endpoint.Mount(s.public, HubPath)

	s.internal = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler,
		BodyLimit:             cfg.MaxPublishBytes,
	})
	s.mountInternal(s.internal)

	if s.publicLn, err = net.Listen("tcp", cfg.HubAddr); err != nil {
		return nil, fmt.Errorf("listen on HUB_ADDR %s: %w", cfg.HubAddr, err)
	}
	if s.internalLn, err = net.Listen("tcp", cfg.InternalAddr); err != nil {
		s.publicLn.Close()
		return nil, fmt.Errorf("listen on HUB_INTERNAL_ADDR %s: %w", cfg.InternalAddr, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.goRun(func() {
		if err := s.core.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("backplane stopped", "err", err)
		}
	})
	s.goRun(func() { s.endpoint.Run(runCtx) })
	s.goRun(func() { _ = s.public.Listener(s.publicLn) })
	s.goRun(func() { _ = s.internal.Listener(s.internalLn) })
	return s, nil
}

func (s *Server) goRun(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

// HubURL is the base URL of the public listener, e.g. http://127.0.0.1:8080.
func (s *Server) HubURL() string { return "http://" + s.publicLn.Addr().String() }

// InternalURL is the base URL of the internal listener.
func (s *Server) InternalURL() string { return "http://" + s.internalLn.Addr().String() }

// Config returns the configuration in force (with the dev-mode secret).
func (s *Server) Config() Config { return s.cfg }

// Shutdown drains the node: /readyz fails, new connections are refused, every
// client gets what is queued for it and then a Close message that allows
// reconnecting; then the listeners stop. ctx bounds the drain.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	drainErr := s.endpoint.Shutdown(ctx)
	s.cancel()
	err := errors.Join(drainErr, s.public.ShutdownWithContext(ctx), s.internal.ShutdownWithContext(ctx))
	s.wg.Wait()
	return err
}

// newBackplane picks the backplane: Redis when HUB_REDIS_URL is set,
// otherwise this node alone.
func newBackplane(cfg Config, _ *slog.Logger) (notify.Backplane, error) {
	if cfg.RedisURL != "" {
		return nil, errors.New("HUB_REDIS_URL: the Redis backplane is not available in this build")
	}
	return notify.NewMemoryBackplane(), nil
}
