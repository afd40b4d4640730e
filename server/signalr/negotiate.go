package signalr

import (
	"cmp"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

type negotiateTransport struct {
	Transport       string   `json:"transport"`
	TransferFormats []string `json:"transferFormats"`
}

type negotiateResponse struct {
	NegotiateVersion    int                  `json:"negotiateVersion"`
	ConnectionID        string               `json:"connectionId"`
	ConnectionToken     string               `json:"connectionToken,omitempty"`
	AvailableTransports []negotiateTransport `json:"availableTransports"`
	// Written only when true: the JS client refuses a negotiation that
	// offers stateful reconnect it did not ask for.
	UseStatefulReconnect bool `json:"useStatefulReconnect,omitempty"`
}

// negotiate answers POST {hub}/negotiate. Protocol problems are answered with
// 200 and {"error": ...}, which the official clients turn into a start error;
// authentication problems with 401/403.
func (e *Endpoint) negotiate(c *fiber.Ctx) error {
	version := 0
	if v := c.Query("negotiateVersion"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c.JSON(fiber.Map{"error": "The negotiateVersion query parameter must be a non-negative integer."})
		}
		version = min(n, 1)
	}
	user, err := e.authenticate(c)
	if err != nil {
		return ignoreResponded(err)
	}
	// Stateful reconnect needs both sides: the endpoint allows it and the
	// client asked (withStatefulReconnect). Whether it is used is decided at
	// the handshake (WebSockets, version 2).
	stateful := e.opts.StatefulReconnect && strings.EqualFold(queryFold(c, "useStatefulReconnect"), "true")
	conn, err := e.newConn(user, version, stateful)
	if err != nil {
		return ignoreResponded(httpErrorResponse(c, statusOf(err), err))
	}
	resp := negotiateResponse{NegotiateVersion: version, ConnectionID: conn.id, UseStatefulReconnect: stateful}
	if version > 0 {
		resp.ConnectionToken = conn.token // version 0 clients use the connection id as the token
	}
	for _, t := range e.opts.Transports {
		formats := []string{"Text", "Binary"}
		if t == ServerSentEvents {
			formats = formats[:1] // text only: an event stream cannot carry MessagePack
		}
		resp.AvailableTransports = append(resp.AvailableTransports, negotiateTransport{t, formats})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(resp)
}

// authenticate runs the Authenticate hook and answers failures itself; it
// returns a non-nil error only after the response is written.
func (e *Endpoint) authenticate(c *fiber.Ctx) (any, error) {
	if e.opts.Authenticate == nil {
		return nil, nil
	}
	user, err := e.opts.Authenticate(c)
	if err != nil {
		// A refusal is counted once: under the reason the hook gave it
		// (RejectReason), or else that of its status.
		var reason string
		var r interface{ RejectReason() string }
		if errors.As(err, &r) {
			reason = r.RejectReason()
		}
		status := statusOf(err)
		switch status {
		case fiber.StatusUnauthorized:
			reason = cmp.Or(reason, "unauthenticated")
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer`)
		case fiber.StatusForbidden:
			reason = cmp.Or(reason, "forbidden")
		}
		if reason != "" {
			e.metrics.Rejected(reason)
		}
		return nil, httpErrorResponse(c, status, err)
	}
	return user, nil
}

// httpErrorResponse writes {"error": err} with status and returns a sentinel
// telling the caller the response is done.
func httpErrorResponse(c *fiber.Ctx, status int, err error) error {
	_ = c.Status(status).JSON(fiber.Map{"error": err.Error()})
	return errResponded
}

// errResponded marks a request whose response has been written.
var errResponded = &httpError{msg: "response written"}

// queryFold returns the query parameter name, matched case-insensitively as
// ASP.NET Core matches query keys.
func queryFold(c *fiber.Ctx, name string) string {
	if v := c.Query(name); v != "" {
		return v
	}
	var v string
	c.Context().QueryArgs().VisitAll(func(key, value []byte) {
		if v == "" && strings.EqualFold(string(key), name) {
			v = string(value)
		}
	})
	return v
}
