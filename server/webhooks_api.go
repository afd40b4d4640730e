package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"notifyhub/notify"
	"notifyhub/payloads"
)

// The webhook endpoints API of the internal listener. Tokens need the admin
// scope (HUB_ADMIN_SCOPE); a token with a tenant_id manages that tenant only.
func (s *Server) mountWebhooksAPI(app *fiber.App) {
	const base = "/internal/v1/tenants/:tenantId/webhooks"
	app.Post(base, s.createWebhook)
	app.Get(base, s.listWebhooks)
	app.Get(base+"/:webhookId", s.getWebhook)
	app.Patch(base+"/:webhookId", s.updateWebhook)
	app.Delete(base+"/:webhookId", s.deleteWebhook)
	app.Get(base+"/:webhookId/deliveries", s.webhookDeliveries)
}

// Bounds of the webhook API's input.
const (
	maxWebhookURL         = 2048
	maxWebhookDescription = 512
	maxWebhookFilter      = 100 // events or resources per endpoint
	maxDeliveriesListed   = 1000
)

// webhookRequest is the body of create (url required) and update (every
// field optional: only those present change).
type webhookRequest struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	Events      *[]string `json:"events"`
	Resources   *[]string `json:"resources"`
	Secret      *string   `json:"secret"`
	Enabled     *bool     `json:"enabled"`
}

// webhookResponse is an endpoint as the API shows it. The secret is shown
// when the endpoint is created and when it is read alone, never in lists.
type webhookResponse struct {
	ID             string     `json:"id"`
	Tenant         string     `json:"tenantId"`
	URL            string     `json:"url"`
	Description    string     `json:"description,omitempty"`
	Events         []string   `json:"events"`
	Resources      []string   `json:"resources"`
	Secret         string     `json:"secret,omitempty"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabledReason,omitempty"`
	DisabledAt     *time.Time `json:"disabledAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
}

func toWebhookResponse(w notify.Webhook, withSecret bool) webhookResponse {
	r := webhookResponse{ID: w.ID, Tenant: w.Tenant, URL: w.URL, Description: w.Description,
		Events: w.Events, Resources: w.Resources, Enabled: !w.Disabled, DisabledReason: w.DisabledReason,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
	if r.Events == nil {
		r.Events = []string{}
	}
	if r.Resources == nil {
		r.Resources = []string{}
	}
	if withSecret {
		r.Secret = w.Secret
	}
	if !w.DisabledAt.IsZero() {
		at := w.DisabledAt
		r.DisabledAt = &at
	}
	return r
}

// deliveryResponse is one entry of an endpoint's delivery log (without the
// body, which is the notification as it was published).
type deliveryResponse struct {
	ID             string                `json:"id"`
	Event          string                `json:"event"`
	Status         notify.DeliveryStatus `json:"status"`
	Attempts       int                   `json:"attempts"`
	CreatedAt      time.Time             `json:"createdAt"`
	NextAttemptAt  *time.Time            `json:"nextAttemptAt,omitempty"`
	LastAttemptAt  *time.Time            `json:"lastAttemptAt,omitempty"`
	ResponseStatus int                   `json:"responseStatus,omitempty"`
	Error          string                `json:"error,omitempty"`
	FinishedAt     *time.Time            `json:"finishedAt,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// errAnswered says that a helper has written the response already.
var errAnswered = errors.New("answered")

// webhookAuth checks the token and the tenant of a webhook API request and
// returns the tenant; errAnswered when it refused the request itself.
func (s *Server) webhookAuth(c *fiber.Ctx) (string, error) {
	tenant := c.Params("tenantId")
	if _, err := s.verifier.authenticatePublisher(c, s.cfg.AdminScope, tenant); err != nil {
		_ = s.respondError(c, "", err)
		return "", errAnswered
	}
	if !validTenant(tenant) {
		_ = badTenantID(c)
		return "", errAnswered
	}
	return tenant, nil
}

// tenantWebhook authorizes a request for one endpoint (webhookAuth) and
// finds the endpoint of its tenant and id; it answers refusals and 404
// itself (errAnswered).
func (s *Server) tenantWebhook(c *fiber.Ctx) (notify.Webhook, error) {
	tenant, err := s.webhookAuth(c)
	if err != nil {
		return notify.Webhook{}, err
	}
	w, found, err := s.store.Webhook(c.UserContext(), c.Params("webhookId"))
	if err != nil {
		return w, s.storeFailed(c, "read webhook", err)
	}
	if !found || w.Tenant != tenant {
		_ = c.Status(fiber.StatusNotFound).JSON(errorResponse{Error: "no webhook endpoint with that id in this tenant"})
		return w, errAnswered
	}
	return w, nil
}

func (s *Server) storeFailed(c *fiber.Ctx, op string, err error) error {
	s.log.Error("store: "+op, "err", err)
	_ = c.Status(fiber.StatusServiceUnavailable).JSON(errorResponse{Error: "the hub cannot use its store; try again"})
	return errAnswered
}

// done turns errAnswered into nil for handlers.
func done(err error) error {
	if errors.Is(err, errAnswered) {
		return nil
	}
	return err
}

// decodeWebhookRequest reads a request body strictly: an unknown key is an
// error, not a setting silently ignored.
func decodeWebhookRequest(body []byte) (webhookRequest, error) {
	var req webhookRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("invalid JSON body: %v", err)
	}
	return req, nil
}

// apply validates req and applies its fields to w.
func (s *Server) applyWebhookRequest(w *notify.Webhook, req webhookRequest) *errorResponse {
	bad := func(field, format string, a ...any) *errorResponse {
		return &errorResponse{Error: field + ": " + fmt.Sprintf(format, a...), Field: field}
	}
	if req.URL != nil {
		u, err := url.Parse(*req.URL)
		switch {
		case len(*req.URL) > maxWebhookURL:
			return bad("url", "longer than %d characters", maxWebhookURL)
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return bad("url", "must be an absolute http:// or https:// URL")
		case u.Fragment != "":
			return bad("url", "must not have a #fragment")
		}
		// Names are checked when dialled (DNS may change); an address can
		// be refused at once.
		if ip := net.ParseIP(u.Hostname()); ip != nil && !notify.PublicIP(ip) && !s.cfg.WebhookAllowPrivate {
			return bad("url", "%s is not a public address (set HUB_WEBHOOK_ALLOW_PRIVATE to allow it)", ip)
		}
		w.URL = *req.URL
	}
	if req.Description != nil {
		if len(*req.Description) > maxWebhookDescription {
			return bad("description", "longer than %d characters", maxWebhookDescription)
		}
		w.Description = *req.Description
	}
	if req.Events != nil {
		if len(*req.Events) > maxWebhookFilter {
			return bad("events", "more than %d events", maxWebhookFilter)
		}
		for i, e := range *req.Events {
			if !s.catalogue.Known(e) {
				return bad("events["+strconv.Itoa(i)+"]", "unknown event %q (known: %s)", e, s.catalogue.Events())
			}
		}
		w.Events = slices.Compact(slices.Sorted(slices.Values(*req.Events)))
	}
	if req.Resources != nil {
		if len(*req.Resources) > maxWebhookFilter {
			return bad("resources", "more than %d resources", maxWebhookFilter)
		}
		for i, r := range *req.Resources {
			if err := payloads.ValidName(r); err != nil {
				return bad("resources["+strconv.Itoa(i)+"]", "a resource name %v", err)
			}
		}
		w.Resources = slices.Compact(slices.Sorted(slices.Values(*req.Resources)))
	}
	if req.Secret != nil {
		if _, err := notify.ParseWebhookSecret(*req.Secret); err != nil {
			return bad("secret", "%v (omit it to have one generated)", err)
		}
		w.Secret = *req.Secret
	}
	if req.Enabled != nil {
		if *req.Enabled {
			w.Disabled, w.DisabledReason, w.DisabledAt = false, "", time.Time{}
		} else if !w.Disabled {
			w.Disabled, w.DisabledReason, w.DisabledAt = true, "disabled through the API", time.Now().UTC()
		}
	}
	return nil
}

// createWebhook registers an endpoint: 201 with the endpoint and its secret.
func (s *Server) createWebhook(c *fiber.Ctx) error {
	tenant, err := s.webhookAuth(c)
	if err != nil {
		return done(err)
	}
	if err := s.checkProvisioned(c.UserContext(), tenant, fiber.StatusNotFound); err != nil {
		return s.respondError(c, "not_provisioned", err)
	}
	req, err := decodeWebhookRequest(c.Body())
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: err.Error()})
	}
	if req.URL == nil {
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: "url: required", Field: "url"})
	}
	now := time.Now().UTC()
	w := notify.Webhook{ID: notify.NewWebhookID(now), Tenant: tenant, CreatedAt: now, UpdatedAt: now}
	if bad := s.applyWebhookRequest(&w, req); bad != nil {
		return c.Status(fiber.StatusBadRequest).JSON(bad)
	}
	if w.Secret == "" {
		w.Secret = notify.NewWebhookSecret()
	}
	if err := s.store.CreateWebhook(c.UserContext(), w, s.cfg.WebhooksPerTenant); err != nil {
		if errors.Is(err, notify.ErrLimit) {
			return c.Status(fiber.StatusConflict).JSON(errorResponse{Error: fmt.Sprintf("the tenant has %d webhook endpoints, the most allowed (HUB_WEBHOOKS_PER_TENANT)", s.cfg.WebhooksPerTenant)})
		}
		return done(s.storeFailed(c, "create webhook", err))
	}
	s.log.Info("webhook endpoint created", "tenant", tenant, "webhook", w.ID)
	return c.Status(fiber.StatusCreated).JSON(toWebhookResponse(w, true))
}

// listWebhooks lists the tenant's endpoints (without secrets).
func (s *Server) listWebhooks(c *fiber.Ctx) error {
	tenant, err := s.webhookAuth(c)
	if err != nil {
		return done(err)
	}
	ws, err := s.store.Webhooks(c.UserContext(), tenant)
	if err != nil {
		return done(s.storeFailed(c, "list webhooks", err))
	}
	out := make([]webhookResponse, len(ws))
	for i, w := range ws {
		out[i] = toWebhookResponse(w, false)
	}
	return c.JSON(fiber.Map{"webhooks": out})
}

// getWebhook returns one endpoint with its secret.
func (s *Server) getWebhook(c *fiber.Ctx) error {
	w, err := s.tenantWebhook(c)
	if err != nil {
		return done(err)
	}
	return c.JSON(toWebhookResponse(w, true))
}

// updateWebhook changes the fields present in the body. "enabled": true
// re-enables a disabled endpoint; deliveries queued from then on are sent.
func (s *Server) updateWebhook(c *fiber.Ctx) error {
	if _, err := s.tenantWebhook(c); err != nil {
		return done(err)
	}
	req, err := decodeWebhookRequest(c.Body())
	if err != nil {
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: err.Error()})
	}
	var bad *errorResponse
	w, err := s.store.UpdateWebhook(c.UserContext(), c.Params("webhookId"), func(w *notify.Webhook) error {
		if bad = s.applyWebhookRequest(w, req); bad != nil {
			return errAnswered
		}
		w.UpdatedAt = time.Now().UTC()
		return nil
	})
	switch {
	case bad != nil:
		return c.Status(fiber.StatusBadRequest).JSON(bad)
	case errors.Is(err, notify.ErrNotFound):
		return c.Status(fiber.StatusNotFound).JSON(errorResponse{Error: "no webhook endpoint with that id in this tenant"})
	case err != nil:
		return done(s.storeFailed(c, "update webhook", err))
	}
	s.webhooks.Kick(w.ID) // a worker waiting to retry looks at the new settings
	return c.JSON(toWebhookResponse(w, true))
}

// deleteWebhook deletes an endpoint with its pending deliveries: 204.
func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	w, err := s.tenantWebhook(c)
	if err != nil {
		return done(err)
	}
	if _, err := s.store.DeleteWebhook(c.UserContext(), w.ID); err != nil {
		return done(s.storeFailed(c, "delete webhook", err))
	}
	s.webhooks.Kick(w.ID)
	s.log.Info("webhook endpoint deleted", "tenant", w.Tenant, "webhook", w.ID)
	return c.SendStatus(fiber.StatusNoContent)
}

// webhookDeliveries returns an endpoint's deliveries, newest first: the
// pending ones, then the log of finished ones. ?limit= (default 100).
func (s *Server) webhookDeliveries(c *fiber.Ctx) error {
	w, err := s.tenantWebhook(c)
	if err != nil {
		return done(err)
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxDeliveriesListed {
			return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: fmt.Sprintf("limit: want 1-%d", maxDeliveriesListed), Field: "limit"})
		}
		limit = n
	}
	ds, err := s.store.Deliveries(c.UserContext(), w.ID, limit)
	if err != nil {
		return done(s.storeFailed(c, "read deliveries", err))
	}
	out := make([]deliveryResponse, len(ds))
	for i, d := range ds {
		out[i] = deliveryResponse{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts, CreatedAt: d.CreatedAt,
			NextAttemptAt: timePtr(d.NextAttemptAt), LastAttemptAt: timePtr(d.LastAttemptAt), ResponseStatus: d.ResponseStatus,
			Error: d.Error, FinishedAt: timePtr(d.FinishedAt)}
	}
	return c.JSON(fiber.Map{"webhook": toWebhookResponse(w, false), "deliveries": out})
}
