package server

import (
	"io"
	"net"
	"sync"
	"time"
)

// A publisher whose body is over the limit gets its 413 while it is still
// sending. If the hub then closed the socket with the rest of the body
// unread, the kernel would answer with a reset, and a client that reads
// only after writing (Node's fetch does) would see ECONNRESET instead of the
// 413. So a closed connection first stops writing, then discards what the
// peer still sends for a bounded time and size, as net/http does.
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 16 << 20
)

// lingerListener hands out connections whose Close lingers (see above).
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close sends FIN after what was written, and closes for good once the peer
// has closed too, or after lingerTimeout or lingerBytes. Only the first call
// does anything.
func (c *lingerConn) Close() (err error) {
	c.once.Do(func() {
		if err = c.CloseWrite(); err != nil {
			err = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerBytes)
			_ = c.TCPConn.Close()
		}()
	})
	return err
}
