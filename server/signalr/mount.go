package signalr

import (
	"strings"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

const localConn = "signalr.conn"

// Mount registers the hub at path on r: POST path/negotiate and the
// connection URL path itself: GET for the WebSocket upgrade, the Server-Sent
// Events stream (Accept: text/event-stream) and long polls; POST for what SSE
// and long-polling clients send; DELETE to end a long-polling connection.
// Other methods get 405 from the router.
//
// The status codes are ASP.NET Core's, which the official clients expect:
// 400 without an id, 404 for an unknown one, 409 when the connection already
// has its transport, 400 for a request of another transport than the one the
// connection started with, 405 for POST on a WebSocket connection.
func (e *Endpoint) Mount(r fiber.Router, path string) {
	r.Post(path+"/negotiate", e.negotiate)
	// The upgrade uses fasthttp/websocket directly: contrib's websocket.New
	// copies every request header, query parameter and cookie into maps that
	// live as long as the socket (about 1 KiB per connection), and the hub
	// needs none of them after the upgrade. Behaviour is contrib's with the
	// settings it had: any origin, no subprotocols, no compression, 426 when
	// the upgrade fails.
	upgrader := fws.FastHTTPUpgrader{
		ReadBufferSize:  e.opts.ReadBufferSize,
		WriteBufferSize: e.opts.WriteBufferSize,
		WriteBufferPool: &bufferPool{},
		CheckOrigin:     func(*fasthttp.RequestCtx) bool { return true },
	}
	upgrade := func(c *fiber.Ctx) error {
		conn := c.Locals(localConn).(*Conn)
		if err := upgrader.Upgrade(c.Context(), func(ws *fws.Conn) { e.serveWebSocket(ws, conn) }); err != nil {
			return fiber.ErrUpgradeRequired
		}
		return nil
	}
	r.Get(path, func(c *fiber.Ctx) error {
		var err error
		switch {
		case c.Method() == fiber.MethodHead:
			// The router serves HEAD with GET; a HEAD must not start a poll.
			err = plainError(c, fiber.StatusMethodNotAllowed, "Method Not Allowed")
		case websocket.IsWebSocketUpgrade(c):
			err = e.upgradeWebSocket(c, upgrade)
		case acceptsEventStream(c):
			err = e.serveSSE(c)
		default:
			err = e.serveLongPolling(c)
		}
		return ignoreResponded(err)
	})
	r.Post(path, func(c *fiber.Ctx) error { return ignoreResponded(e.servePost(c)) })
	r.Delete(path, func(c *fiber.Ctx) error { return ignoreResponded(e.serveDelete(c)) })
}

// acceptsEventStream reports whether a GET is an EventSource: ASP.NET Core
// tells SSE from long polling only by the Accept header.
func acceptsEventStream(c *fiber.Ctx) bool {
	return strings.Contains(strings.ToLower(c.Get(fiber.HeaderAccept)), "text/event-stream")
}

// Plain-text bodies of the error responses, as ASP.NET Core words them.
const (
	msgNoID             = "Connection ID required"
	msgUnknownID        = "No Connection with that ID"
	msgTransportChange  = "Cannot change transports mid-connection"
	msgActive           = "Connection already has an active transport"
	msgPostOnWebSocket  = "POST requests are not allowed for WebSocket connections."
	msgDeleteNotPolling = "Cannot terminate this connection using the DELETE endpoint."
	msgNotStarted       = "The connection has not started a transport yet"
)

// findConn authenticates a request on the connection URL and finds the
// connection of its id. It returns ended (and no connection) for a
// long-polling connection that ended recently. On error the response has
// been written: 400 without an id, 404 for an unknown one, 403 when the
// connection belongs to another user.
func (e *Endpoint) findConn(c *fiber.Ctx) (conn *Conn, user any, ended bool, err error) {
	if user, err = e.authenticate(c); err != nil {
		return nil, nil, false, err
	}
	token := c.Query("id")
	if token == "" {
		return nil, user, false, plainError(c, fiber.StatusBadRequest, msgNoID)
	}
	conn, ended = e.lookup(token)
	switch {
	case ended:
		return nil, user, true, nil
	case conn == nil:
		return nil, user, false, plainError(c, fiber.StatusNotFound, msgUnknownID)
	case e.opts.SameUser != nil && !e.opts.SameUser(conn.UserData, user):
		e.metrics.Rejected("forbidden")
		return nil, user, false, plainError(c, fiber.StatusForbidden, "The connection belongs to another user")
	}
	return conn, user, false, nil
}

// transportNotSupported answers a request for a transport the endpoint does
// not offer.
func transportNotSupported(c *fiber.Ctx, k transportKind) error {
	return plainError(c, fiber.StatusNotFound, k.String()+" transport not supported by this end point type")
}

// servePost takes what an SSE or long-polling client sends: hub protocol
// bytes, possibly several messages, possibly a part of one. It answers 200
// with an empty body once they are processed.
func (e *Endpoint) servePost(c *fiber.Ctx) error {
	conn, _, ended, err := e.findConn(c)
	if err != nil {
		return err
	}
	if ended {
		return plainError(c, fiber.StatusNotFound, msgUnknownID)
	}
	state, kind, tr := conn.snapshot()
	switch {
	case kind == kindWebSockets:
		return plainError(c, fiber.StatusMethodNotAllowed, msgPostOnWebSocket)
	case kind == kindNone:
		return plainError(c, fiber.StatusConflict, msgNotStarted)
	case state == stateClosed:
		return plainError(c, fiber.StatusNotFound, msgUnknownID)
	}
	// Errors mean the connection is closing (a client Close, a protocol
	// error): the client learns it from its stream, not from this response.
	if err := conn.receive(tr, c.Body()); err == errConnGone {
		return plainError(c, fiber.StatusNotFound, msgUnknownID)
	}
	c.Status(fiber.StatusOK)
	return nil
}

// serveDelete ends a long-polling connection: 202, and its pending poll
// completes with 204.
func (e *Endpoint) serveDelete(c *fiber.Ctx) error {
	conn, _, ended, err := e.findConn(c)
	if err != nil {
		return err
	}
	if ended {
		c.Status(fiber.StatusAccepted)
		return nil
	}
	if _, kind, _ := conn.snapshot(); kind != kindLongPolling {
		return plainError(c, fiber.StatusBadRequest, msgDeleteNotPolling)
	}
	conn.Abort()
	c.Status(fiber.StatusAccepted)
	return nil
}

func plainError(c *fiber.Ctx, status int, msg string) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	_ = c.Status(status).SendString(msg)
	return errResponded
}

func ignoreResponded(err error) error {
	if err == errResponded {
		return nil
	}
	return err
}
