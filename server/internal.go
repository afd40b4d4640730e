package server

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/pprof"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"notifyhub/payloads"
)

// publishResponse is the 202 body of the publish API.
type publishResponse struct {
	Accepted int `json:"accepted"`
}

// errorResponse is the body of every 4xx/5xx of the HTTP APIs. Field names the
// bad input field of a 400 ("e", "p.a", "[2].p.a").
type errorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func (s *Server) mountInternal(app *fiber.App) {
	app.Post("/internal/v1/tenants/:tenantId/notifications", s.publish)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	if s.cfg.PProf {
		// Heap, goroutine and CPU profiles of a running hub (go tool pprof
		// http://HUB_INTERNAL_ADDR/debug/pprof/heap). Internal listener only.
		app.Use(pprof.New())
	}
}

// publish accepts notifications for one tenant. A batch is validated whole:
// one bad element rejects it all, so nothing is half-published.
func (s *Server) publish(c *fiber.Ctx) error {
	start := time.Now()
	tenant := c.Params("tenantId")
	if _, err := s.verifier.authenticatePublisher(c, s.cfg.PublishScope, tenant); err != nil {
		return s.respondError(c, "", err)
	}
	if !validTenant(tenant) {
		return badTenantID(c)
	}
	if err := s.checkProvisioned(c.UserContext(), tenant, fiber.StatusNotFound); err != nil {
		return s.respondError(c, "not_provisioned", err)
	}
	ns, err := s.catalogue.ParseNotifications(c.Body(), s.cfg.MaxBatch, time.Now())
	if err != nil {
		s.metrics.Rejected("invalid_notification")
		var fe *payloads.FieldError
		if errors.As(err, &fe) {
			return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: fe.Error(), Field: fe.Field})
		}
		return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: err.Error()})
	}
	if err := s.core.Publish(c.UserContext(), tenant, ns); err != nil {
		s.log.Error("publish failed", "tenant", tenant, "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorResponse{Error: err.Error()})
	}
	// Webhooks are queued after the fan-out, so that sockets never wait for
	// the store, and here, on the node that accepted the publish, so that
	// each notification is queued once however many nodes deliver it.
	if _, err := s.webhooks.Enqueue(c.UserContext(), tenant, ns); err != nil {
		s.log.Error("queue webhooks failed", "tenant", tenant, "err", err)
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorResponse{Error: "the notifications were delivered to the connections but could not be queued for the tenant's webhooks; retrying may deliver them twice to connections"})
	}
	s.metrics.publishDelay.Observe(time.Since(start).Seconds())
	return c.Status(fiber.StatusAccepted).JSON(publishResponse{Accepted: len(ns)})
}

// respondError answers a request the hub refuses with err, the one way the
// HTTP APIs turn errors into responses: the status of an authError (500 for
// any other error), WWW-Authenticate on a 401, and the JSON error body.
// Refused input (4xx) is counted in notifyhub_rejected_total under reason,
// or if reason is "" under the status's: unauthenticated (401), forbidden
// (403). The hub's own failures (5xx) are not rejected input.
func (s *Server) respondError(c *fiber.Ctx, reason string, err error) error {
	status := fiber.StatusInternalServerError
	var ae *authError
	if errors.As(err, &ae) {
		status = ae.status
	}
	if reason == "" {
		switch status {
		case fiber.StatusUnauthorized:
			reason = "unauthenticated"
		case fiber.StatusForbidden:
			reason = "forbidden"
		}
	}
	if reason != "" && status < fiber.StatusInternalServerError {
		s.metrics.Rejected(reason)
	}
	if status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
	}
	return c.Status(status).JSON(errorResponse{Error: err.Error()})
}

// badTenantID answers a tenantId in the URL that is not a valid tenant id.
func badTenantID(c *fiber.Ctx) error {
	return c.Status(fiber.StatusBadRequest).JSON(errorResponse{Error: "tenantId must be 1-128 printable ASCII characters without spaces or slashes", Field: "tenantId"})
}

func validTenant(t string) bool {
	if t == "" || len(t) > payloads.MaxNameLength {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c < 0x21 || c > 0x7e || c == '/' {
			return false
		}
	}
	return true
}

func (s *Server) healthz(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) }

// readyz fails while draining, and while the backplane cannot reach the
// other nodes.
func (s *Server) readyz(c *fiber.Ctx) error {
	if s.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	}
	if err := s.core.Ready(); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "degraded", "error": err.Error()})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// errorHandler answers Fiber's own errors (413, 404, 405...) with the JSON
// error body of the APIs.
func errorHandler(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		status = fe.Code
	}
	msg := err.Error()
	if status == fiber.StatusRequestEntityTooLarge {
		msg = "request body exceeds the size limit"
	}
	return c.Status(status).JSON(errorResponse{Error: msg})
}
