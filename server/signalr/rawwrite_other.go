//go:build !unix

package signalr

import (
	"errors"
	"net"
	"syscall"
)

// Without unix write semantics there are no writes that must not wait: the
// writer pool hands every batch to the connection's own blocking writer.

func rawConn(net.Conn) syscall.RawConn { return nil }

type attempt struct{}

func newAttempt() *attempt { return &attempt{} }

func (*attempt) do(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("no writes without waiting on this platform")
}
