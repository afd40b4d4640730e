package server

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// firstByteDeadline is a fasthttp ConnState hook that gives the first read
// of a new connection the read timeout. With ReduceMemoryUsage, fasthttp
// v1.52 waits for a connection's first byte without any deadline (the
// ReadTimeout is only set once a request has started; fixed upstream in
// valyala/fasthttp#2183), so a client that connects and sends nothing would
// hold its goroutine for ever. fasthttp sets its own deadlines from the
// first byte on, and clears them before handing a WebSocket over.
func firstByteDeadline(d time.Duration) func(net.Conn, fasthttp.ConnState) {
	return func(c net.Conn, state fasthttp.ConnState) {
		if state == fasthttp.StateNew && d > 0 {
			_ = c.SetReadDeadline(time.Now().Add(d))
		}
	}
}
