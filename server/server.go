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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	endpoints []*signalr.Endpoint // the main hub first, then the stream endpoints
	metrics   *metrics
	store     notify.Store       // provisioned tenants, webhook endpoints and deliveries
	webhooks  *notify.Dispatcher // queues and sends webhook deliveries
	tokens    *hubTokens         // the tokens /events/* issues
	channels  *channels
	tenants   *tenantConns // this node's connections by tenant

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
	tokens, err := newHubTokens(cfg, log)
	if err != nil {
		return nil, err
	}
	verifier.hub = tokens
	cat, err := payloads.NewCatalogue(cfg.Events, cfg.ResourceEvents)
	if err != nil {
		return nil, fmt.Errorf("event catalogue: %w", err)
	}
	m := newMetrics()
	backplane, err := newBackplane(cfg, log, m)
	if err != nil {
		return nil, err
	}
	streams, err := streamsFromConfig(cfg, cat)
	if err != nil {
		return nil, err
	}
	gate, err := newEventGate(streams)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, verifier: verifier, catalogue: cat, tokens: tokens, tenants: newTenantConns()}
	if s.channels, err = newChannels(cat, gate, cfg.ChannelEvent, cfg.ChannelScopes, tokens); err != nil {
		return nil, err
	}
	s.metrics = m
	s.core = notify.New(notify.Options{
		Backplane:        backplane,
		MaxSubscriptions: cfg.MaxSubscriptions,
		Metrics:          m,
	})
	m.watchIndex(s.core.Stats)

	protocols := []signalr.Protocol{signalr.JSONProtocol{}, signalr.MessagePackProtocol{}}
	methods := map[string]argShape{clientOnEvent: argObject}
	for _, st := range streams {
		methods[st.Method] = st.shape()
	}
	shared := &clients{
		core:        s.core,
		limits:      newConnLimits(cfg.MaxConnectionsPerTenant, cfg.MaxConnectionsPerUser, cfg.DisconnectTimeout),
		encoders:    newEncoders(protocols, methods),
		closeExpiry: cfg.CloseOnTokenExpiry,
		tenants:     s.tenants,
		rejected:    m.Rejected,
		log:         log,
	}
	hub := &mainHub{clients: shared, catalogue: cat, gate: gate, channels: s.channels, rate: cfg.InvocationRate, burst: cfg.InvocationBurst}
	main, err := s.newEndpoint(protocols, hub, shared, cfg.ClientScope, nil)
	if err != nil {
		return nil, err
	}
	s.endpoints = append(s.endpoints, main)
	paths := []string{HubPath}
	for _, st := range streams {
		e, err := s.newEndpoint(protocols, &streamHub{clients: shared, def: st}, shared, st.Scope, st.authorize)
		if err != nil {
			return nil, err
		}
		s.endpoints = append(s.endpoints, e)
		paths = append(paths, st.Path)
	}

	m.watchQueues(func() (n int64) {
		for _, e := range s.endpoints {
			n += e.QueuedFrames()
		}
		return n
	})

	s.public = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler,
		// Strings from the request (query, params, headers) outlive it: they
		// become connection filters and index keys. Without Immutable they
		// would alias fasthttp's buffers, which the next request reuses.
		Immutable:      true,
		ReadBufferSize: 16 << 10, // room for a JWT in the query string
		// fasthttp hands a hijacked (WebSocket) connection its request reader,
		// which then lives as long as the socket: 16 KiB per connection. With
		// ReduceMemoryUsage it returns the reader to its pool once a request
		// is read, so an idle WebSocket holds none.
		ReduceMemoryUsage: true,
		// A client that connects and sends nothing, or drips its headers,
		// would otherwise hold a goroutine and buffers for ever. The read
		// timeout covers reading a request, not handling it: a held long
		// poll or an SSE stream is not cut, and fasthttp clears the
		// deadlines before handing a WebSocket over.
		ReadTimeout: cfg.ReadTimeout,
		IdleTimeout: cfg.IdleTimeout,
	})
	s.public.Server().ConnState = firstByteDeadline(cfg.ReadTimeout) // ReadTimeout alone misses a silent client here
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
	s.mountEvents(s.public)
	for i, e := range s.endpoints {
		e.Mount(s.public, paths[i])
	}

	s.internal = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler,
		Immutable:             true, // as on the public listener: tenant ids outlive requests
		BodyLimit:             cfg.MaxPublishBytes,
		ReadTimeout:           cfg.ReadTimeout, // as on the public listener
		IdleTimeout:           cfg.IdleTimeout,
	})
	s.mountInternal(s.internal)
	s.mountWebhooksAPI(s.internal)

	if s.store, err = newStore(cfg, log); err != nil {
		return nil, err
	}
	s.webhooks = notify.NewDispatcher(notify.DispatcherOptions{
		Store:       s.store,
		Client:      notify.NewWebhookClient(cfg.WebhookAllowPrivate),
		Concurrency: cfg.WebhookConcurrency,
		Timeout:     cfg.WebhookTimeout,
		RetryBase:   cfg.WebhookRetryBase,
		RetryMax:    cfg.WebhookRetryMax,
		RetryPeriod: cfg.WebhookRetryPeriod,
		MaxPending:  cfg.WebhookMaxPending,
		Logger:      log,
		Metrics:     m,
	})
	if s.publicLn, err = net.Listen("tcp", cfg.HubAddr); err != nil {
		s.store.Close()
		return nil, fmt.Errorf("listen on HUB_ADDR %s: %w", cfg.HubAddr, err)
	}
	if s.internalLn, err = net.Listen("tcp", cfg.InternalAddr); err != nil {
		s.publicLn.Close()
		s.store.Close()
		return nil, fmt.Errorf("listen on HUB_INTERNAL_ADDR %s: %w", cfg.InternalAddr, err)
	}
	s.internalLn = lingerListener{s.internalLn}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	// The hub takes publishes before either listener serves a request.
	stopped, err := s.core.Start(runCtx)
	if err != nil {
		cancel()
		s.publicLn.Close()
		s.internalLn.Close()
		s.store.Close()
		return nil, err
	}
	s.goRun(func() { <-stopped })
	for _, e := range s.endpoints {
		s.goRun(func() { e.Run(runCtx) })
	}
	s.goRun(func() { _ = s.webhooks.Run(runCtx) })
	if w, ok := s.store.(notify.TenantWatcher); ok {
		s.goRun(func() { s.watchDeprovisioned(runCtx, w) })
	}
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
	var drainErr error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, e := range s.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Shutdown(ctx); err != nil {
				mu.Lock()
				drainErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.cancel()
	err := errors.Join(drainErr, s.public.ShutdownWithContext(ctx), s.internal.ShutdownWithContext(ctx))
	// fasthttp closes only the listeners its Serve has registered: one whose
	// goroutine had not started yet (a Shutdown right after Start) would
	// start afterwards and serve for ever. Closing them ends that Serve too.
	_ = s.publicLn.Close()
	_ = s.internalLn.Close()
	stopped := make(chan struct{})
	go func() { s.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		// The drain may have used up ctx: what was cancelled just now gets
		// a moment to end. Past that, something is stuck; the process can
		// still exit, and the store stays open, as something may use it.
		select {
		case <-stopped:
		case <-time.After(time.Second):
			return errors.Join(err, fmt.Errorf("background work did not stop in time: %w", ctx.Err()))
		}
	}
	// Last: the webhook workers have stopped, and the file lock is released
	// for the next process.
	if cerr := s.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close the store: %w", cerr))
	}
	return err
}

// newBackplane picks the backplane: Redis when HUB_REDIS_URL is set,
// otherwise this node alone. The Redis backplane connects in the background,
// so a node starts (not ready) while Redis is unreachable.
func newBackplane(cfg Config, log *slog.Logger, m *metrics) (notify.Backplane, error) {
	if cfg.RedisURL == "" {
		m.BackplaneUp(true) // one node: every publish reaches every node
		return notify.NewMemoryBackplane(), nil
	}
	b, err := notify.NewRedisBackplane(notify.RedisOptions{URL: cfg.RedisURL, Logger: log, Metrics: m})
	if err != nil {
		// The URL may hold a password: the error names the problem, not the URL.
		return nil, fmt.Errorf("HUB_REDIS_URL: %w", err)
	}
	return b, nil
}

// newStore opens the state store: the Redis of HUB_REDIS_URL when set (every
// node shares it), otherwise the embedded file HUB_STORE_PATH.
func newStore(cfg Config, log *slog.Logger) (notify.Store, error) {
	if cfg.RedisURL != "" {
		st, err := notify.NewRedisStore(notify.RedisStoreOptions{URL: cfg.RedisURL, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("HUB_REDIS_URL: %w", err)
		}
		return st, nil
	}
	st, err := notify.NewBoltStore(cfg.StorePath)
	if err != nil {
		return nil, fmt.Errorf("HUB_STORE_PATH: %w", err)
	}
	return st, nil
}

// newEndpoint builds a hub endpoint with the server's wire settings. Connect
// requests must carry a valid token of a tenant holding scope (HUB_CLIENT_SCOPE
// when empty); authorize, when set, checks the rest and names the filters the
// connection is subscribed to.
func (s *Server) newEndpoint(protocols []signalr.Protocol, h signalr.Handler, shared *clients, scope string,
	authorize func(*fiber.Ctx, *Principal) ([]payloads.Filter, error)) (*signalr.Endpoint, error) {
	if scope == "" {
		scope = s.cfg.ClientScope
	}
	cfg := s.cfg
	return signalr.NewEndpoint(signalr.Options{
		Handler: h,
		Authenticate: func(c *fiber.Ctx) (any, error) {
			p, err := s.verifier.authenticateClient(c, scope)
			if err != nil {
				return nil, err
			}
			if err := s.checkProvisioned(c.UserContext(), p.Tenant, fiber.StatusForbidden); err != nil {
				// A 503 (the store failing) is not the client's fault: not counted.
				var ae *authError
				if errors.As(err, &ae) && ae.status == fiber.StatusForbidden {
					err = rejection{"not_provisioned", err}
				}
				return nil, err
			}
			cl := &client{principal: p, authAt: time.Now()}
			if len(p.Channels) > 0 && authorize == nil { // the main hub: a connection token's channels
				if cl.filters, err = s.channels.connectFilters(p); err != nil {
					return nil, err
				}
			}
			if authorize != nil {
				if cl.filters, err = authorize(c, p); err != nil {
					var ae *authError
					if errors.As(err, &ae) && ae.status == fiber.StatusBadRequest {
						return nil, rejection{"bad_request", err}
					}
					return nil, err
				}
			}
			// Only a request that opens a connection counts against the limits;
			// polls, sends and reattaches of an existing one carry its id.
			if c.Query("id") == "" {
				if err := shared.limits.admit(p, time.Now()); err != nil {
					return nil, rejection{"connection_limit", err}
				}
			}
			return cl, nil
		},
		SameUser: func(negotiated, connecting any) bool {
			a, b := negotiated.(*client), connecting.(*client)
			return a.principal.Tenant == b.principal.Tenant && a.principal.Subject == b.principal.Subject &&
				slices.EqualFunc(a.filters, b.filters, func(x, y payloads.Filter) bool { return x.String() == y.String() })
		},
		Protocols:         protocols,
		Transports:        cfg.Transports,
		MaxMessageSize:    cfg.MaxMessageSize,
		HandshakeTimeout:  cfg.HandshakeTimeout,
		KeepAliveInterval: cfg.KeepAliveInterval,
		ClientTimeout:     cfg.ClientTimeout,
		DisconnectTimeout: cfg.DisconnectTimeout,
		PollTimeout:       cfg.PollTimeout,
		QueueLength:       cfg.QueueLength,
		SendTimeout:       cfg.SendTimeout,
		Logger:            s.log,
		Metrics:           s.metrics,

		StatefulReconnect:           cfg.StatefulReconnect,
		StatefulReconnectBufferSize: cfg.StatefulReconnectBuffer,
	})
}
