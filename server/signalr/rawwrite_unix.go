//go:build unix

package signalr

import (
	"net"
	"syscall"
)

// rawConn returns the descriptor of a WebSocket's socket for writes that
// must not wait, or nil if it has none.
func rawConn(nc net.Conn) syscall.RawConn {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn() // fasthttp's wrapper of a hijacked connection
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// attempt is a pool writer's state for writes that must not wait: the
// arguments and results of its write callback, a method value made once per
// writer, so that neither a write nor a connection allocates one.
type attempt struct {
	frame []byte
	n     int
	err   error
	fn    func(fd uintptr) bool
}

func newAttempt() *attempt {
	a := &attempt{}
	a.fn = a.write
	return a
}

// do writes as much of frame to rc as the socket takes at once.
func (a *attempt) do(rc syscall.RawConn, frame []byte) (int, error) {
	a.frame = frame
	err := rc.Write(a.fn)
	n := a.n
	if err == nil {
		err = a.err
	}
	a.frame, a.n, a.err = nil, 0, nil
	return n, err
}

// write makes one write system call: returning true tells the runtime not
// to wait for the socket.
func (a *attempt) write(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), a.frame)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			err = nil
		}
		a.n, a.err = max(n, 0), err
		return true
	}
}
