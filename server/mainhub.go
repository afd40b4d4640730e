package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/subscriptions"
)

// Hub method and client method names of the main hub.
const (
	methodSubscribe   = "Subscribe"
	methodUnsubscribe = "Unsubscribe"
	clientOnEvent     = "OnEvent"
)

// client is one main-hub connection: the notify.Subscriber behind a
// signalr.Conn. It is created when the request is authenticated.
type client struct {
	principal *Principal
	conn      *signalr.Conn  // set in OnConnected, before any subscription exists
	enc       notify.Encoder // likewise
	subs      subscriptions.Set
	rate      rateLimiter
	counted   bool // reserved in the connection limits

	expiry *time.Timer // closes the connection when the token expires
}

func (c *client) Tenant() string                    { return c.principal.Tenant }
func (c *client) Subscriptions() *subscriptions.Set { return &c.subs }
func (c *client) Encoder() notify.Encoder           { return c.enc }
func (c *client) Deliver(frame []byte) bool         { return c.conn.Send(frame) }

// onEventEncoder encodes notifications as OnEvent invocations of one protocol.
type onEventEncoder struct{ proto signalr.Protocol }

func (e *onEventEncoder) EncodeNotification(n *payloads.Notification) ([]byte, error) {
	m := signalr.Message{Type: signalr.TypeInvocation, Target: clientOnEvent, Arguments: []any{n}}
	return e.proto.AppendMessage(nil, &m)
}

// mainHub implements the Subscribe/Unsubscribe hub on top of the notify core.
type mainHub struct {
	core        *notify.Hub
	catalogue   *payloads.Catalogue
	encoders    map[string]notify.Encoder // by protocol name
	closeExpiry bool
	limits      *connLimits
	rate        float64 // invocations per second per connection; 0: unlimited
	burst       int
	rejected    func(reason string)
	log         *slog.Logger
}

func newMainHub(core *notify.Hub, cat *payloads.Catalogue, protocols []signalr.Protocol, cfg Config, m *metrics, log *slog.Logger) *mainHub {
	h := &mainHub{
		core: core, catalogue: cat, encoders: map[string]notify.Encoder{},
		closeExpiry: cfg.CloseOnTokenExpiry,
		limits:      newConnLimits(cfg.MaxConnectionsPerTenant, cfg.MaxConnectionsPerUser),
		rate:        cfg.InvocationRate, burst: cfg.InvocationBurst,
		rejected: m.Rejected, log: log,
	}
	for _, p := range protocols {
		h.encoders[p.Name()] = &onEventEncoder{p}
	}
	return h
}

// OnConnected implements signalr.Handler.
func (h *mainHub) OnConnected(c *signalr.Conn) error {
	cl := c.UserData.(*client)
	if err := h.limits.reserve(cl.principal); err != nil {
		h.rejected("connection_limit")
		return err
	}
	cl.counted = true
	cl.conn = c
	cl.enc = h.encoders[c.Protocol().Name()]
	if exp := cl.principal.ExpiresAt; h.closeExpiry && !exp.IsZero() {
		cl.expiry = time.AfterFunc(time.Until(exp), func() {
			c.Close("Connection closed with an error. The access token has expired.", true)
		})
	}
	h.log.Debug("connected", "conn", c.ID(), "tenant", cl.Tenant(), "user", cl.principal.Subject, "transport", c.Transport(), "protocol", c.Protocol().Name())
	return nil
}

// OnDisconnected implements signalr.Handler.
func (h *mainHub) OnDisconnected(c *signalr.Conn) {
	cl := c.UserData.(*client)
	if cl.expiry != nil {
		cl.expiry.Stop()
	}
	if cl.counted {
		h.limits.release(cl.principal)
	}
	h.core.Disconnect(cl)
	h.log.Debug("disconnected", "conn", c.ID(), "tenant", cl.Tenant())
}

// Invoke implements signalr.Handler. Method names match case-insensitively,
// as in ASP.NET Core.
func (h *mainHub) Invoke(c *signalr.Conn, target string, args []any) (any, error) {
	var subscribe bool
	switch {
	case strings.EqualFold(target, methodSubscribe):
		subscribe = true
	case strings.EqualFold(target, methodUnsubscribe):
	default:
		return nil, fmt.Errorf("Failed to invoke '%s': the method does not exist. The hub has Subscribe and Unsubscribe.", target)
	}
	name := methodUnsubscribe
	if subscribe {
		name = methodSubscribe
	}
	cl := c.UserData.(*client)
	if !cl.rate.allow(time.Now(), h.rate, h.burst) {
		h.rejected("rate_limited")
		return nil, fmt.Errorf("Failed to invoke '%s': rate limit exceeded (at most %g invocations per second).", name, h.rate)
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("Failed to invoke '%s': it takes 1 argument (the subscription request), got %d.", name, len(args))
	}
	raw, _ := args[0].(signalr.RawValue)
	var req payloads.SubscriptionRequest
	if err := c.Protocol().Unmarshal(raw, &req); err != nil || isNullArg(raw) {
		detail := "null"
		if err != nil {
			detail = err.Error()
		}
		return nil, fmt.Errorf("Failed to invoke '%s': the argument must be an object {e: event, r?: [{n: resource, a?: [actions]}]} (%s).", name, detail)
	}
	f, err := h.catalogue.Filter(&req)
	if err != nil {
		return nil, fmt.Errorf("Failed to invoke '%s': %v", name, err)
	}
	if !subscribe {
		h.core.Unsubscribe(cl, f)
		return nil, nil
	}
	if _, err := h.core.Subscribe(cl, f); err != nil {
		if errors.Is(err, subscriptions.ErrTooManySubscriptions) {
			return nil, fmt.Errorf("Failed to invoke '%s': %v", name, err)
		}
		return nil, fmt.Errorf("Failed to invoke '%s' due to an error on the server.", name)
	}
	return nil, nil
}

// isNullArg reports whether a raw argument is null in either protocol.
func isNullArg(raw signalr.RawValue) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || (len(raw) == 1 && raw[0] == 0xc0)
}
