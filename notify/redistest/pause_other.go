//go:build !unix

package redistest

// Pause needs SIGSTOP; the tests that use it are skipped here.
func (s *Server) Pause() { s.t.Skip("pausing redis-server needs unix signals") }

// Resume continues a paused server.
func (s *Server) Resume() {}
