// Package redistest runs throwaway redis-server processes for tests.
//
// Each Server is its own redis-server on a free loopback port, without
// persistence, stopped when the test ends. When redis-server is not on PATH
// the test is skipped on a developer machine and fails in CI (the CI
// environment variable is set), so CI never silently skips the Redis tests.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a redis-server child process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	port int

	mu   sync.Mutex
	proc *process     // nil while stopped
	log  bytes.Buffer // the server's output over all its runs
}

// process is one run of redis-server; exited yields Wait's result.
type process struct {
	cmd    *exec.Cmd
	exited chan error
}

// Start starts a redis-server on a free loopback port and stops it when the
// test ends; its output is logged if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found on PATH: CI must install it (apt-get install redis-server)")
		}
		t.Skip("redis-server not found on PATH: skipping the Redis backplane tests (apt-get install redis-server to run them)")
	}
	s := &Server{t: t, bin: bin}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("redis-server output:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	// Another process can take the free port between probing and binding;
	// a few fresh ports make that harmless.
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("start redis-server: %v", err)
		}
	}
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop kills the server at once, as a crash would (there is nothing to
// persist). It is a no-op when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart starts the server again, empty, on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The port can be briefly unavailable (a client's reconnection attempt
	// connected to itself, which Linux allows on loopback); retry a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("restart redis-server: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redis-server is not running")
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal redis-server: %v", err)
	}
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--loglevel", "warning")
	out := &lockedWriter{mu: &s.mu, w: &s.log}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait(); close(p.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ping(ctx, s.Addr()) != nil {
		select {
		case err := <-p.exited:
			return fmt.Errorf("redis-server on port %d exited: %v", s.port, err)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// ping sends one inline PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago. It is
// taken below Linux's ephemeral range (32768 and up by default), so that
// outgoing connections, which get their local ports from that range, do not
// occupy it when the server is restarted on it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatalf("no free port found between 20000 and 32000")
	return 0
}

// lockedWriter serialises the process's output with readers of the log.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
