package signalr

import "sync"

// writerPool writes the WebSocket connections' queued frames on a few
// goroutines that the endpoint's connections share. They exist only while
// some connection has frames waiting (no goroutine per idle connection, none
// at all when nothing is sent) and never wait on a socket: a batch the
// socket does not take at once is finished by a goroutine of that
// connection's own (Conn.writeSlow), so a client that does not read delays
// no one else. At low rates this replaces a goroutine started per
// connection and notification by one started per publish and writer.
//
// Connections wait in order of their first queued frame; one whose queue
// filled again while it was written goes to the back. A connection is in
// the pool at most once (Conn.writing), so a publish to many connections
// coalesces: by a connection's turn, the later notifications of the same
// publish are usually queued behind the first.
type writerPool struct {
	max int // writers at most

	mu      sync.Mutex
	queue   []*Conn // connections with frames to write: queue[head:]
	head    int
	running int
}

// kick puts c in line and starts a writer if fewer than max run. The caller
// has just set c.writing (holding c.mu) or is c's writer, which keeps it
// set, so c is in line at most once. Writers never hold mu while they take
// a Conn's lock.
func (p *writerPool) kick(c *Conn) {
	p.mu.Lock()
	p.queue = append(p.queue, c)
	start := p.running < p.max
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

// next takes the first connection in line, or ends the writer (nil).
func (p *writerPool) next() *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		p.running--
		p.queue, p.head = p.queue[:0], 0
		if cap(p.queue) > 4096 {
			p.queue = nil // a burst grew it: give the memory back while idle
		}
		return nil
	}
	c := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head > 1024 && p.head*2 > len(p.queue) {
		// Keep the line from creeping through memory while it never empties.
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return c
}

func (p *writerPool) work() {
	a := newAttempt()
	for c := p.next(); c != nil; c = p.next() {
		c.writeTurn(a)
	}
}
