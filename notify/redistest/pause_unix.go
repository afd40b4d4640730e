//go:build unix

package redistest

import "syscall"

// Pause stops the server process without closing its sockets (SIGSTOP): to
// clients it looks like a network partition or a stalled host, connections
// stay open and nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }
