package server

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"
)

// The /events/* routes of the public listener, as the Envoy events API
// document names them: token exchange for browser and native clients, and
// a tenant's provisioning. The caller sends its identity provider's token
// (never one the hub issued) in the Authorization header; the tenant is the
// token's tenant_id.
func (s *Server) mountEvents(app *fiber.App) {
	app.Get("/events/connection_token", s.connectionToken)
	// The document sends the channel as a JSON body of a GET; POST and the
	// ?channel= query are accepted too, for clients that cannot.
	app.Get("/events/subscription_token", s.subscriptionToken)
	app.Post("/events/subscription_token", s.subscriptionToken)
	app.Get("/events/provision", s.provision)
	app.Post("/events/provision", s.provision)
	app.Delete("/events/provision", s.deprovision)
	app.Get("/events/deprovision", s.deprovision)
	app.Post("/events/deprovision", s.deprovision)
}

// tokenResponse is the body of the token routes.
type tokenResponse struct {
	Token     string    `json:"token"`
	Channel   string    `json:"channel,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// tenantResponse is the body of the provisioning routes.
type tenantResponse struct {
	Tenant        string     `json:"tenantId"`
	Provisioned   bool       `json:"provisioned"`
	ProvisionedAt *time.Time `json:"provisionedAt,omitempty"`
	// Created is set by provision: false when the tenant was provisioned already.
	Created *bool `json:"created,omitempty"`
	// Deprovision reports what it removed; connections are counted on the
	// node that answered (the others close theirs too).
	WebhooksDeleted   *int `json:"webhooksDeleted,omitempty"`
	ConnectionsClosed *int `json:"connectionsClosed,omitempty"`
}

// caller authenticates an /events/* request: an identity provider's token
// with a tenant and scope.
func (s *Server) caller(c *fiber.Ctx, scope string) (*Principal, error) {
	raw := bearerToken(c, false)
	if raw == "" {
		return nil, unauthorized("missing access token: send an Authorization Bearer header")
	}
	p, err := s.verifier.Verify(raw)
	if err != nil {
		return nil, err
	}
	if p.Exchanged {
		return nil, forbidden("a token issued by this hub cannot be used here: send the identity provider's access token")
	}
	if p.Tenant == "" {
		return nil, forbidden("the access token has no tenant_id claim")
	}
	if !p.HasScope(scope) {
		return nil, forbidden("the access token lacks the %q scope", scope)
	}
	return p, nil
}

// connectionToken issues a short-lived token to connect to the hub as the
// caller: its tenant, user, scopes and site roles. The caller needs the
// client scope, so that the token it gets can connect.
func (s *Server) connectionToken(c *fiber.Ctx) error {
	p, err := s.caller(c, s.cfg.ClientScope)
	if err != nil {
		return s.respondError(c, "", err)
	}
	if err := s.checkProvisioned(c.UserContext(), p.Tenant, fiber.StatusForbidden); err != nil {
		return s.respondError(c, "not_provisioned", err)
	}
	token, exp, err := s.tokens.connectionToken(p, s.channels.granted(p), time.Now())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(tokenResponse{Token: token, ExpiresAt: exp.UTC()})
}

// subscriptionToken issues a token that lets the caller's connections join
// one channel: one of the caller's tenant, and if private, of the caller's
// user (or any user's, with the admin scope); 403 otherwise.
func (s *Server) subscriptionToken(c *fiber.Ctx) error {
	p, err := s.caller(c, s.cfg.ClientScope)
	if err != nil {
		return s.respondError(c, "", err)
	}
	var req struct {
		Channel string `json:"channel"`
	}
	if body := c.Body(); len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: `the body must be a JSON object {"channel": "<name>:<tenant>[#<user>]"}`, Field: "channel"})
		}
	}
	if req.Channel == "" {
		req.Channel = c.Query("channel")
	}
	if req.Channel == "" {
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: `channel is required: send {"channel": "<name>:<tenant>[#<user>]"} or ?channel=`, Field: "channel"})
	}
	ch, err := parseChannel(req.Channel)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: err.Error(), Field: "channel"})
	}
	if err := authorizeChannel(p, ch, s.cfg.AdminScope); err != nil {
		return s.respondError(c, "", err)
	}
	if err := s.channels.gated(ch.Name); err != nil {
		return s.respondError(c, "", err)
	}
	if err := s.checkProvisioned(c.UserContext(), p.Tenant, fiber.StatusForbidden); err != nil {
		return s.respondError(c, "not_provisioned", err)
	}
	token, exp, err := s.tokens.subscriptionToken(p, ch, time.Now())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(tokenResponse{Token: token, Channel: ch.String(), ExpiresAt: exp.UTC()})
}

// provision records the caller's tenant as provisioned. It is idempotent.
func (s *Server) provision(c *fiber.Ctx) error {
	p, err := s.caller(c, s.cfg.AdminScope)
	if err != nil {
		return s.respondError(c, "", err)
	}
	t, created, err := s.store.ProvisionTenant(c.UserContext(), p.Tenant, time.Now())
	if err != nil {
		s.log.Error("store: provision tenant", "tenant", p.Tenant, "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorResponse{Error: "the hub cannot write its store; try again"})
	}
	if created {
		s.log.Info("tenant provisioned", "tenant", p.Tenant, "by", p.Subject)
	}
	return c.JSON(tenantResponse{Tenant: t.ID, Provisioned: true, ProvisionedAt: &t.ProvisionedAt, Created: &created})
}

// deprovision forgets the caller's tenant, deletes its webhook endpoints
// (with their pending deliveries) and closes its connections on every node
// with a Close message that does not allow reconnecting. It is idempotent.
func (s *Server) deprovision(c *fiber.Ctx) error {
	p, err := s.caller(c, s.cfg.AdminScope)
	if err != nil {
		return s.respondError(c, "", err)
	}
	_, deleted, err := s.store.DeprovisionTenant(c.UserContext(), p.Tenant)
	if err != nil {
		s.log.Error("store: deprovision tenant", "tenant", p.Tenant, "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorResponse{Error: "the hub cannot write its store; try again"})
	}
	for _, w := range deleted {
		s.webhooks.Kick(w.ID) // a worker waiting to retry finds its endpoint gone
	}
	closed := s.tenants.closeTenant(p.Tenant, time.Now())
	hooks := len(deleted)
	s.log.Info("tenant deprovisioned", "tenant", p.Tenant, "by", p.Subject, "webhooks_deleted", hooks, "connections_closed", closed)
	return c.JSON(tenantResponse{Tenant: p.Tenant, Provisioned: false, WebhooksDeleted: &hooks, ConnectionsClosed: &closed})
}
