package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/testclient"
)

// conn is one subscribed connection and what it has received in the current
// phase. Only its reader goroutine writes the fields; the main goroutine reads
// them after a phase, hence the atomics.
type conn struct {
	c        *testclient.Client
	recv     atomic.Int64 // unique notifications of this phase
	dup      atomic.Int64 // sequence numbers at or below the last one seen
	last     atomic.Int64 // highest sequence number seen
	lastRecv atomic.Int64 // unix ns of the last notification of this phase
}

// fleet is the set of connections and the counters their readers share.
type fleet struct {
	cfg   *config
	proto signalr.Protocol
	scan  func([]byte) (seq, sent int64, ok bool)

	mu    sync.Mutex
	conns []*conn

	phaseLo   atomic.Int64 // first sequence number of the current phase
	delivered atomic.Int64 // unique notifications of this phase, all connections
	stale     atomic.Int64 // notifications of an earlier phase
	badEvents atomic.Int64 // notifications the tool could not read
	lat       histogram

	connectErrors atomic.Int64
	errMu         sync.Mutex
	errSamples    map[string]int
}

func newFleet(cfg *config) *fleet {
	f := &fleet{cfg: cfg, errSamples: map[string]int{}}
	if cfg.protocol == "messagepack" {
		f.proto, f.scan = newFastProtocol(signalr.MessagePackProtocol{}), scanMsgpack
	} else {
		f.proto, f.scan = newFastProtocol(signalr.JSONProtocol{}), scanJSON
	}
	f.phaseLo.Store(1 << 62)
	return f
}

// onEvent runs on the connection's reader goroutine for every notification.
func (f *fleet) onEvent(c *conn, ev testclient.Event) {
	seq, sent, ok := f.scan(ev.Arg)
	if !ok {
		var n struct {
			R  *string   `json:"r" msgpack:"r"`
			CA time.Time `json:"ca" msgpack:"ca"`
		}
		if err := ev.Decode(&n); err != nil || n.R == nil {
			f.badEvents.Add(1)
			return
		}
		s, k := parseDigits([]byte(*n.R))
		if k == 0 || k != len(*n.R) {
			f.badEvents.Add(1)
			return
		}
		seq, sent = s, n.CA.UnixNano()
	}
	now := ev.Received.UnixNano()
	if seq < f.phaseLo.Load() {
		f.stale.Add(1)
		return
	}
	f.lat.Record(time.Duration(now - sent))
	if seq <= c.last.Load() {
		c.dup.Add(1)
		return
	}
	c.last.Store(seq)
	c.recv.Add(1)
	c.lastRecv.Store(now)
	f.delivered.Add(1)
}

// startPhase resets the per-phase counters; sequence numbers below lo belong
// to earlier phases.
func (f *fleet) startPhase(lo int64) {
	f.phaseLo.Store(lo)
	for _, c := range f.snapshot() {
		c.recv.Store(0)
		c.dup.Store(0)
		c.lastRecv.Store(0)
	}
	f.delivered.Store(0)
	f.stale.Store(0)
	f.lat.Reset()
}

func (f *fleet) snapshot() []*conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*conn(nil), f.conns...)
}

// open counts connections that are still up.
func (f *fleet) open() int {
	n := 0
	for _, c := range f.snapshot() {
		select {
		case <-c.c.Done():
		default:
			n++
		}
	}
	return n
}

func (f *fleet) recordError(err error) {
	f.connectErrors.Add(1)
	msg := err.Error()
	var he *testclient.HTTPError
	if errors.As(err, &he) {
		msg = fmt.Sprintf("HTTP %d", he.StatusCode)
	} else if len(msg) > 120 {
		msg = msg[:120]
	}
	f.errMu.Lock()
	f.errSamples[msg]++
	f.errMu.Unlock()
}

// topErrors returns the most frequent connect errors, most frequent first.
func (f *fleet) topErrors(n int) []string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range f.errSamples {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%d× %s", all[i].v, all[i].k))
	}
	return out
}

// connect opens cfg.conns connections, at most cfg.concurrency at a time, each
// spread over the source addresses and subscribed before it counts.
func (f *fleet) connect(ctx context.Context, token func(i int) (string, error), sources []net.IP) {
	req := f.cfg.subscription()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < f.cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var src net.IP
				if len(sources) > 0 {
					src = sources[i%len(sources)]
				}
				tok, err := token(i)
				if err == nil {
					err = f.dialOne(ctx, tok, src, req)
				}
				if err != nil {
					f.recordError(err)
				}
			}
		}()
	}
	for i := 0; i < f.cfg.conns && ctx.Err() == nil; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
}

func (f *fleet) dialOne(ctx context.Context, token string, src net.IP, req payloads.SubscriptionRequest) error {
	dctx, cancel := context.WithTimeout(ctx, f.cfg.dialTimeout)
	defer cancel()
	c := &conn{}
	opts := testclient.Options{
		Token:           token,
		TokenInQuery:    f.cfg.tokenInQuery,
		Protocol:        f.proto,
		SkipNegotiation: !f.cfg.negotiate,
		LocalAddr:       src,
		OnEvent:         func(ev testclient.Event) { f.onEvent(c, ev) },
	}
	cl, err := testclient.Dial(dctx, f.cfg.hubURL, opts)
	if err != nil {
		return err
	}
	c.c = cl
	if err := cl.Subscribe(dctx, req); err != nil {
		cl.Close()
		return fmt.Errorf("subscribe: %w", err)
	}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	return nil
}

// closeAll closes every connection, a few at a time.
func (f *fleet) closeAll() {
	conns := f.snapshot()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func(c *conn) {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.c.Close()
		}(c)
	}
	wg.Wait()
}
