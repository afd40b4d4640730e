package signalr

import (
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

const localConn = "signalr.conn"

// Mount registers the hub at path on r: POST path/negotiate and the
// connection URL path itself (WebSocket upgrade, SSE, long polling, sends).
func (e *Endpoint) Mount(r fiber.Router, path string) {
	r.Post(path+"/negotiate", e.negotiate)
	upgrade := websocket.New(func(ws *websocket.Conn) {
		e.serveWebSocket(ws.Conn, ws.Locals(localConn).(*Conn))
	}, websocket.Config{
		ReadBufferSize:  e.opts.ReadBufferSize,
		WriteBufferSize: e.opts.WriteBufferSize,
		WriteBufferPool: &bufferPool{},
		RecoverHandler:  func(*websocket.Conn) {},
	})
	r.Get(path, func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return e.serveHTTPGet(c)
		}
		if !e.transportEnabled(WebSockets) {
			return c.Status(fiber.StatusNotFound).SendString("WebSockets transport not supported by this end point type")
		}
		conn, err := e.connFor(c, WebSockets)
		if err != nil {
			return ignoreResponded(err)
		}
		c.Locals(localConn, conn)
		return upgrade(c)
	})
	r.Post(path, e.servePost)
	r.Delete(path, e.serveDelete)
}

// connFor finds (by id) or creates (skipNegotiation, WebSockets only) the
// connection a transport request is for, after authenticating it. On error
// the response has been written.
func (e *Endpoint) connFor(c *fiber.Ctx, transport string) (*Conn, error) {
	user, err := e.authenticate(c)
	if err != nil {
		return nil, err
	}
	token := c.Query("id")
	if token == "" {
		if transport != WebSockets {
			return nil, plainError(c, fiber.StatusBadRequest, "Connection ID required")
		}
		conn, err := e.newConn(user)
		if err != nil {
			return nil, httpErrorResponse(c, statusOf(err), err)
		}
		return conn, nil
	}
	conn := e.lookup(token)
	if conn == nil {
		return nil, plainError(c, fiber.StatusNotFound, "No Connection with that ID")
	}
	if e.opts.SameUser != nil && !e.opts.SameUser(conn.UserData, user) {
		e.metrics.Rejected("forbidden")
		return nil, plainError(c, fiber.StatusForbidden, "The connection belongs to another user")
	}
	conn.mu.Lock()
	state := conn.state
	conn.mu.Unlock()
	if state != stateNegotiated {
		return nil, plainError(c, fiber.StatusConflict, "Connection already has an active transport")
	}
	return conn, nil
}

func plainError(c *fiber.Ctx, status int, msg string) error {
	_ = c.Status(status).SendString(msg)
	return errResponded
}

func ignoreResponded(err error) error {
	if err == errResponded {
		return nil
	}
	return err
}

// serveHTTPGet, servePost and serveDelete are the SSE and long-polling side
// of the connection URL.
func (e *Endpoint) serveHTTPGet(c *fiber.Ctx) error {
	if c.Query("id") == "" {
		return plainError(c, fiber.StatusBadRequest, "Connection ID required")
	}
	return plainError(c, fiber.StatusNotFound, "Transport not supported by this end point type")
}

func (e *Endpoint) servePost(c *fiber.Ctx) error {
	return ignoreResponded(plainError(c, fiber.StatusMethodNotAllowed, "POST requests are not allowed for WebSocket connections."))
}

func (e *Endpoint) serveDelete(c *fiber.Ctx) error {
	return ignoreResponded(plainError(c, fiber.StatusBadRequest, "Cannot terminate this connection using the DELETE endpoint."))
}
