package server

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything an operator can set. DefaultConfig holds the embedded
// defaults; FromEnv overlays the HUB_* environment variables (README lists them).
type Config struct {
	HubAddr      string // HUB_ADDR: public listener (hub, health)
	InternalAddr string // HUB_INTERNAL_ADDR: internal listener (publish API, metrics)

	JWTSecret          string // HUB_JWT_SECRET: HS256 key
	JWTPublicKeyFile   string // HUB_JWT_PUBLIC_KEY_FILE: PEM RSA or ECDSA public key (RS256/ES256)
	JWTIssuer          string // HUB_JWT_ISSUER: required "iss" when set
	JWTAudience        string // HUB_JWT_AUDIENCE: required "aud" when set
	ClientScope        string // HUB_CLIENT_SCOPE: scope a client token must hold
	PublishScope       string // HUB_PUBLISH_SCOPE: scope a publisher token must hold
	CloseOnTokenExpiry bool   // HUB_CLOSE_ON_TOKEN_EXPIRY: close connections when their token expires
	StatefulReconnect  bool   // HUB_STATEFUL_RECONNECT: let clients that ask keep their connection across a dropped WebSocket

	Events         []string // HUB_EVENTS: the event catalogue
	ResourceEvents []string // HUB_RESOURCE_EVENTS: events whose payload is a ResourceChangedPayload
	Transports     []string // HUB_TRANSPORTS: offered transports, in order (WebSockets, ServerSentEvents, LongPolling)
	Streams        []string // HUB_STREAMS: stream endpoints served (built-in names or HUB_STREAMS_FILE's); "none" for none
	StreamsFile    string   // HUB_STREAMS_FILE: JSON array of more stream endpoint definitions
	SiteRolesClaim string   // HUB_SITE_ROLES_CLAIM: token claim mapping site ids to roles
	CORSOrigins    []string // HUB_CORS_ORIGINS: browser origins allowed to negotiate cross-origin

	MaxMessageSize          int           // HUB_MAX_MESSAGE_SIZE: largest incoming hub message (bytes)
	MaxPublishBytes         int           // HUB_MAX_PUBLISH_BYTES: largest publish body (bytes)
	MaxBatch                int           // HUB_MAX_BATCH: most notifications in one publish
	MaxSubscriptions        int           // HUB_MAX_SUBSCRIPTIONS: subscription entries per connection
	QueueLength             int           // HUB_QUEUE_LENGTH: outbound frames per connection before it is closed as slow
	SendTimeout             time.Duration // HUB_SEND_TIMEOUT: one socket write; a client that blocks it longer is dropped
	StatefulReconnectBuffer int           // HUB_STATEFUL_RECONNECT_BUFFER: unacknowledged bytes kept per stateful connection
	MaxConnectionsPerTenant int           // HUB_MAX_CONNECTIONS_PER_TENANT: 0 = unlimited
	MaxConnectionsPerUser   int           // HUB_MAX_CONNECTIONS_PER_USER: 0 = unlimited
	InvocationRate          float64       // HUB_INVOCATION_RATE: hub invocations per second per connection; 0 = unlimited
	InvocationBurst         int           // HUB_INVOCATION_BURST: invocations allowed at once before the rate applies
	HandshakeTimeout        time.Duration // HUB_HANDSHAKE_TIMEOUT
	KeepAliveInterval       time.Duration // HUB_KEEPALIVE_INTERVAL
	ClientTimeout           time.Duration // HUB_CLIENT_TIMEOUT
	DisconnectTimeout       time.Duration // HUB_DISCONNECT_TIMEOUT: a connection without its transport (between polls, after a drop) is kept this long
	PollTimeout             time.Duration // HUB_POLL_TIMEOUT: longest long poll (keep it under the clients' 100 s)
	ShutdownTimeout         time.Duration // HUB_SHUTDOWN_TIMEOUT: drain time on SIGTERM
	ReadTimeout             time.Duration // HUB_READ_TIMEOUT: reading one request, body included (both listeners)
	IdleTimeout             time.Duration // HUB_IDLE_TIMEOUT: a keep-alive connection waiting for its next request (both listeners)

	RedisURL string // HUB_REDIS_URL: Redis backplane; empty = this node only
	LogLevel string // HUB_LOG_LEVEL: debug, info, warn, error
	PProf    bool   // HUB_PPROF: serve Go's profiles under /debug/pprof/ on the internal listener

	// Tenants, token exchange and webhooks (README: "Event streaming").
	AdminScope           string        // HUB_ADMIN_SCOPE: scope to provision a tenant and manage its webhooks
	RequireProvisioning  bool          // HUB_REQUIRE_PROVISIONING: only provisioned tenants connect and are published to
	StorePath            string        // HUB_STORE_PATH: the embedded store's file (unused with HUB_REDIS_URL)
	TokenSecret          string        // HUB_TOKEN_SECRET: HS256 key of the tokens the hub issues; default derived from HUB_JWT_SECRET
	ConnectionTokenTTL   time.Duration // HUB_CONNECTION_TOKEN_TTL: lifetime of /events/connection_token tokens
	SubscriptionTokenTTL time.Duration // HUB_SUBSCRIPTION_TOKEN_TTL: lifetime of /events/subscription_token tokens
	ChannelEvent         string        // HUB_CHANNEL_EVENT: the resource event whose resources channels name
	ChannelScopes        []string      // HUB_CHANNEL_SCOPES: scope=channel pairs joined automatically by connection tokens
	WebhookTimeout       time.Duration // HUB_WEBHOOK_TIMEOUT: one webhook request
	WebhookConcurrency   int           // HUB_WEBHOOK_CONCURRENCY: webhook requests in flight per node
	WebhookRetryBase     time.Duration // HUB_WEBHOOK_RETRY_BASE: first retry delay (doubles per retry)
	WebhookRetryMax      time.Duration // HUB_WEBHOOK_RETRY_MAX: longest delay between retries
	WebhookRetryPeriod   time.Duration // HUB_WEBHOOK_RETRY_PERIOD: how long a delivery is retried before its endpoint is disabled
	WebhookMaxPending    int           // HUB_WEBHOOK_MAX_PENDING: deliveries queued per endpoint before it is disabled
	WebhooksPerTenant    int           // HUB_WEBHOOKS_PER_TENANT: endpoints per tenant
	WebhookAllowPrivate  bool          // HUB_WEBHOOK_ALLOW_PRIVATE: allow loopback and private-network webhook targets
}

// DefaultConfig returns the embedded defaults: enough to run one node.
func DefaultConfig() Config {
	return Config{
		HubAddr:                 ":8080",
		InternalAddr:            "127.0.0.1:8081",
		ClientScope:             "notifications.subscribe",
		PublishScope:            "notifications.publish",
		CloseOnTokenExpiry:      true,
		Events:                  []string{"portos.resources.changed", "portos.licence.activated", EventAccessEntry, EventAccessIncident},
		Streams:                 []string{"salto-entries", "salto-incidents", "clay-entry", "clay-incident"},
		SiteRolesClaim:          "site_roles",
		ResourceEvents:          []string{"portos.resources.changed"},
		Transports:              []string{"WebSockets", "ServerSentEvents", "LongPolling"},
		StatefulReconnect:       true,
		StatefulReconnectBuffer: 100_000,
		MaxMessageSize:          32 << 10,
		MaxPublishBytes:         1 << 20,
		MaxBatch:                1000,
		MaxSubscriptions:        1000,
		QueueLength:             1024,
		SendTimeout:             10 * time.Second,
		MaxConnectionsPerTenant: 50000,
		MaxConnectionsPerUser:   100,
		InvocationRate:          20,
		InvocationBurst:         50,
		HandshakeTimeout:        15 * time.Second,
		KeepAliveInterval:       15 * time.Second,
		ClientTimeout:           30 * time.Second,
		DisconnectTimeout:       15 * time.Second,
		PollTimeout:             90 * time.Second,
		ShutdownTimeout:         10 * time.Second,
		ReadTimeout:             10 * time.Second,
		IdleTimeout:             2 * time.Minute, // above the 60 s of common load balancers, which then close first
		LogLevel:                "info",
		AdminScope:              "events.admin",
		StorePath:               "notifyhub.db",
		ConnectionTokenTTL:      15 * time.Minute,
		SubscriptionTokenTTL:    5 * time.Minute,
		ChannelEvent:            "portos.resources.changed",
		WebhookTimeout:          10 * time.Second,
		WebhookConcurrency:      16,
		WebhookRetryBase:        5 * time.Second,
		WebhookRetryMax:         time.Hour,
		WebhookRetryPeriod:      24 * time.Hour,
		WebhookMaxPending:       10000,
		WebhooksPerTenant:       20,
	}
}

// FromEnv returns cfg with every HUB_* variable that getenv finds applied.
func FromEnv(cfg Config, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs []string
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v := getenv(name); v != "" {
			*dst = splitList(v)
		}
	}
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive integer", name, v))
				return
			}
			*dst = n
		}
	}
	// limit is num for the limits where 0 means unlimited (limits.go reads
	// them so); a negative value is a mistake, not "unlimited".
	limit := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want 0 (unlimited) or a positive integer", name, v))
				return
			}
			*dst = n
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive duration such as 15s", name, v))
				return
			}
			*dst = d
		}
	}
	boolean := func(name string, dst *bool) {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: want true or false", name, v))
				return
			}
			*dst = b
		}
	}
	str("HUB_ADDR", &cfg.HubAddr)
	str("HUB_INTERNAL_ADDR", &cfg.InternalAddr)
	str("HUB_JWT_SECRET", &cfg.JWTSecret)
	str("HUB_JWT_PUBLIC_KEY_FILE", &cfg.JWTPublicKeyFile)
	str("HUB_JWT_ISSUER", &cfg.JWTIssuer)
	str("HUB_JWT_AUDIENCE", &cfg.JWTAudience)
	str("HUB_CLIENT_SCOPE", &cfg.ClientScope)
	str("HUB_PUBLISH_SCOPE", &cfg.PublishScope)
	boolean("HUB_CLOSE_ON_TOKEN_EXPIRY", &cfg.CloseOnTokenExpiry)
	list("HUB_EVENTS", &cfg.Events)
	list("HUB_RESOURCE_EVENTS", &cfg.ResourceEvents)
	list("HUB_TRANSPORTS", &cfg.Transports)
	boolean("HUB_STATEFUL_RECONNECT", &cfg.StatefulReconnect)
	num("HUB_STATEFUL_RECONNECT_BUFFER", &cfg.StatefulReconnectBuffer)
	list("HUB_CORS_ORIGINS", &cfg.CORSOrigins)
	list("HUB_STREAMS", &cfg.Streams)
	if len(cfg.Streams) == 1 && cfg.Streams[0] == "none" {
		cfg.Streams = nil
	}
	str("HUB_STREAMS_FILE", &cfg.StreamsFile)
	str("HUB_SITE_ROLES_CLAIM", &cfg.SiteRolesClaim)
	num("HUB_MAX_MESSAGE_SIZE", &cfg.MaxMessageSize)
	num("HUB_MAX_PUBLISH_BYTES", &cfg.MaxPublishBytes)
	num("HUB_MAX_BATCH", &cfg.MaxBatch)
	num("HUB_MAX_SUBSCRIPTIONS", &cfg.MaxSubscriptions)
	num("HUB_QUEUE_LENGTH", &cfg.QueueLength)
	limit("HUB_MAX_CONNECTIONS_PER_TENANT", &cfg.MaxConnectionsPerTenant)
	limit("HUB_MAX_CONNECTIONS_PER_USER", &cfg.MaxConnectionsPerUser)
	num("HUB_INVOCATION_BURST", &cfg.InvocationBurst)
	if v := getenv("HUB_INVOCATION_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !(r >= 0) || math.IsInf(r, 0) { // !(r >= 0) also refuses NaN
			errs = append(errs, fmt.Sprintf("HUB_INVOCATION_RATE=%q: want 0 (unlimited) or a positive number", v))
		} else {
			cfg.InvocationRate = r
		}
	}
	dur("HUB_SEND_TIMEOUT", &cfg.SendTimeout)
	dur("HUB_HANDSHAKE_TIMEOUT", &cfg.HandshakeTimeout)
	dur("HUB_KEEPALIVE_INTERVAL", &cfg.KeepAliveInterval)
	dur("HUB_CLIENT_TIMEOUT", &cfg.ClientTimeout)
	dur("HUB_DISCONNECT_TIMEOUT", &cfg.DisconnectTimeout)
	dur("HUB_POLL_TIMEOUT", &cfg.PollTimeout)
	dur("HUB_SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout)
	dur("HUB_READ_TIMEOUT", &cfg.ReadTimeout)
	dur("HUB_IDLE_TIMEOUT", &cfg.IdleTimeout)
	str("HUB_REDIS_URL", &cfg.RedisURL)
	str("HUB_LOG_LEVEL", &cfg.LogLevel)
	boolean("HUB_PPROF", &cfg.PProf)
	str("HUB_ADMIN_SCOPE", &cfg.AdminScope)
	boolean("HUB_REQUIRE_PROVISIONING", &cfg.RequireProvisioning)
	str("HUB_STORE_PATH", &cfg.StorePath)
	str("HUB_TOKEN_SECRET", &cfg.TokenSecret)
	dur("HUB_CONNECTION_TOKEN_TTL", &cfg.ConnectionTokenTTL)
	dur("HUB_SUBSCRIPTION_TOKEN_TTL", &cfg.SubscriptionTokenTTL)
	str("HUB_CHANNEL_EVENT", &cfg.ChannelEvent)
	list("HUB_CHANNEL_SCOPES", &cfg.ChannelScopes)
	dur("HUB_WEBHOOK_TIMEOUT", &cfg.WebhookTimeout)
	num("HUB_WEBHOOK_CONCURRENCY", &cfg.WebhookConcurrency)
	dur("HUB_WEBHOOK_RETRY_BASE", &cfg.WebhookRetryBase)
	dur("HUB_WEBHOOK_RETRY_MAX", &cfg.WebhookRetryMax)
	dur("HUB_WEBHOOK_RETRY_PERIOD", &cfg.WebhookRetryPeriod)
	num("HUB_WEBHOOK_MAX_PENDING", &cfg.WebhookMaxPending)
	num("HUB_WEBHOOKS_PER_TENANT", &cfg.WebhooksPerTenant)
	boolean("HUB_WEBHOOK_ALLOW_PRIVATE", &cfg.WebhookAllowPrivate)
	if len(errs) > 0 {
		return cfg, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// DevMode reports whether no JWT key is configured (go run . with defaults).
func (c Config) DevMode() bool { return c.JWTSecret == "" && c.JWTPublicKeyFile == "" }

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
