package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/subscriptions"
)

// client is one hub connection as the notify core sees it: the
// notify.Subscriber behind a signalr.Conn. It is made when the connect
// request is authenticated.
type client struct {
	principal *Principal
	filters   []payloads.Filter // subscribed at connect (stream endpoints)
	conn      *signalr.Conn     // set in OnConnected, before any subscription exists
	enc       notify.Encoder    // likewise
	subs      subscriptions.Set
	rate      rateLimiter
	counted   bool        // reserved in the connection limits
	expiry    *time.Timer // closes the connection when the token expires
	authAt    time.Time   // when the connect request was authenticated
}

func (c *client) Tenant() string                    { return c.principal.Tenant }
func (c *client) Subscriptions() *subscriptions.Set { return &c.subs }
func (c *client) Encoder() notify.Encoder           { return c.enc }
func (c *client) Deliver(frame []byte) bool         { return c.conn.Send(frame) }

// clients is what every hub of the server shares: the notify core, the
// connection limits, token expiry and the encoders.
type clients struct {
	core        *notify.Hub
	limits      *connLimits
	encoders    *encoders
	closeExpiry bool
	tenants     *tenantConns // this node's connections by tenant, for deprovisioning
	rejected    func(reason string)
	log         *slog.Logger
}

// attach readies cl for delivery on c with the encoder for (method, shape).
func (h *clients) attach(c *signalr.Conn, method string, shape argShape) error {
	cl := c.UserData.(*client)
	if err := h.tenants.add(cl.Tenant(), c, cl.authAt); err != nil {
		return err
	}
	if err := h.limits.reserve(cl.principal); err != nil {
		h.tenants.remove(cl.Tenant(), c)
		h.rejected("connection_limit")
		return err
	}
	cl.counted = true
	cl.conn = c
	cl.enc = h.encoders.get(c.Protocol(), method, shape)
	if exp := cl.principal.ExpiresAt; h.closeExpiry && !exp.IsZero() {
		cl.expiry = time.AfterFunc(time.Until(exp), func() {
			c.Close("Connection closed with an error. The access token has expired.", true)
		})
	}
	for _, f := range cl.filters {
		if _, err := h.core.Subscribe(cl, f); err != nil {
			h.detach(c) // OnDisconnected does not follow a failed OnConnected
			return fmt.Errorf("subscribe %v: %w", f, err)
		}
	}
	h.log.Debug("connected", "conn", c.ID(), "tenant", cl.Tenant(), "user", cl.principal.Subject, "transport", c.Transport(), "protocol", c.Protocol().Name())
	return nil
}

// detach undoes attach when the connection ends.
func (h *clients) detach(c *signalr.Conn) {
	cl := c.UserData.(*client)
	if cl.expiry != nil {
		cl.expiry.Stop()
	}
	if cl.counted {
		h.limits.release(cl.principal)
	}
	h.tenants.remove(cl.Tenant(), c)
	h.core.Disconnect(cl)
	h.log.Debug("disconnected", "conn", c.ID(), "tenant", cl.Tenant())
}

// argShape is how a notification is passed to the client method.
type argShape uint8

const (
	argObject     argShape = iota // the notification itself (OnEvent)
	argJSONString                 // the notification as a JSON string (ReceiveMessage, On<string>)
)

// encoder encodes notifications as invocations of one client method, in one
// hub protocol and argument shape.
type encoder struct {
	proto  signalr.Protocol
	method string
	shape  argShape
}

func (e *encoder) EncodeNotification(n *payloads.Notification) ([]byte, error) {
	var arg any = n
	if e.shape == argJSONString {
		b, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("encode notification: %w", err)
		}
		arg = string(b)
	}
	m := signalr.Message{Type: signalr.TypeInvocation, Target: e.method, Arguments: []any{arg}}
	return e.proto.AppendMessage(nil, &m)
}

// encoders hands out one encoder per (protocol, method, shape), so that the
// core encodes a notification once for all connections that share one.
type encoders struct{ m map[encoder]*encoder }

func newEncoders(protocols []signalr.Protocol, methods map[string]argShape) *encoders {
	e := &encoders{m: map[encoder]*encoder{}}
	for _, p := range protocols {
		for method, shape := range methods {
			k := encoder{p, method, shape}
			e.m[k] = &k
		}
	}
	return e
}

func (e *encoders) get(p signalr.Protocol, method string, shape argShape) notify.Encoder {
	return e.m[encoder{p, method, shape}]
}
