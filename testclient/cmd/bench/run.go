package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	"notifyhub/server"
	"notifyhub/testclient"
)

// run executes the phases and returns the result (also when it stops early
// with an error, as far as it got).
func run(ctx context.Context, cfg *config, log io.Writer) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	sources, err := cfg.sourceAddrs()
	if err != nil {
		return nil, err
	}
	pubToken := cfg.publisherToken
	// Hubs limit connections per user, so minted tokens spread the connections
	// over -users subjects (one per connection by default).
	clientToken := func(i int) (string, error) {
		if cfg.clientToken != "" {
			return cfg.clientToken, nil
		}
		user := i
		if cfg.users > 0 {
			user = i % cfg.users
		}
		return server.MintToken(cfg.secret, server.TokenRequest{Subject: "bench-user-" + strconv.Itoa(user), Tenant: cfg.tenant, Scopes: []string{cfg.clientScope}, TTL: cfg.tokenTTL})
	}
	if pubToken == "" && cfg.secret != "" {
		if pubToken, err = server.MintToken(cfg.secret, server.TokenRequest{Subject: "bench-publisher", Scopes: []string{cfg.publishScope}, TTL: cfg.tokenTTL}); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	probe := &prober{pid: cfg.pid, metricsURL: cfg.metricsURL, http: hc}
	pub := newPublisher(cfg, &testclient.Publisher{BaseURL: cfg.internalURL, Token: pubToken, HTTP: hc})
	f := newFleet(cfg)
	res := &result{Config: resultConfig{
		Hub: cfg.hubURL, Internal: cfg.internalURL, Tenant: cfg.tenant, Connections: cfg.conns,
		Protocol: cfg.protocol, Subscribe: cfg.subscription(), Sources: len(sources), Negotiate: cfg.negotiate,
		Rate: cfg.rate, Duration: cfg.duration.String(), Burst: cfg.burst, Batch: cfg.batch, Repeat: cfg.repeat,
		PayloadBytes: cfg.payloadBytes, PID: cfg.pid, GoMaxProcs: runtime.GOMAXPROCS(0),
	}}
	loaderCPU0, _ := procCPU(os.Getpid())

	// Connect.
	before := probe.sample(ctx)
	start := time.Now()
	stopProgress := progress(cfg.progress, log, func(el time.Duration) string {
		s := probe.sample(ctx)
		return fmt.Sprintf("[connect %5.1fs] connected %d/%d  errors %d  hub RSS %s  goroutines %d",
			el.Seconds(), len(f.snapshot()), cfg.conns, f.connectErrors.Load(), mib(s.RSS), s.Goroutines)
	})
	f.connect(ctx, clientToken, sources)
	stopProgress()
	defer f.closeAll()
	res.Connect = connectResult{
		Connected: len(f.snapshot()),
		Errors:    f.connectErrors.Load(),
		TopErrors: f.topErrors(5),
		Seconds:   time.Since(start).Seconds(),
	}
	if res.Connect.Connected == 0 {
		return res, fmt.Errorf("no connection succeeded: %v", res.Connect.TopErrors)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	select {
	case <-time.After(cfg.settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	after := probe.sample(ctx)
	res.Memory = memoryResult(before, after, f.open())
	res.Connect.OpenAfterSettle = f.open()

	// Publish phases.
	if cfg.burst > 0 || cfg.rate > 0 {
		for i := 0; i < cfg.repeat && ctx.Err() == nil; i++ {
			ph := runPhase(ctx, cfg, f, pub, probe, log, i+1)
			res.Phases = append(res.Phases, ph)
		}
		res.summarize()
	}
	if cfg.hold > 0 {
		fmt.Fprintf(log, "holding %d connections for %s\n", f.open(), cfg.hold)
		select {
		case <-time.After(cfg.hold):
		case <-ctx.Done():
		}
	}
	if loaderCPU1, err := procCPU(os.Getpid()); err == nil {
		res.LoaderCPUSeconds = loaderCPU1 - loaderCPU0
	}
	res.Connect.OpenAtEnd = f.open()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("stopped by -timeout %s", cfg.timeout)
	}
	return res, ctx.Err()
}

// runPhase publishes once (burst or steady) and waits for the deliveries.
func runPhase(ctx context.Context, cfg *config, f *fleet, pub *publisher, probe *prober, log io.Writer, n int) phaseResult {
	recipients := f.open()
	f.startPhase(pub.next)
	pub.resetPhase()
	s0 := probe.sample(ctx)
	loader0, _ := procCPU(os.Getpid())
	start := time.Now()
	var published int64
	stopProgress := progress(cfg.progress, log, func(el time.Duration) string {
		d := f.delivered.Load()
		return fmt.Sprintf("[phase %d %5.1fs] published %d (accepted)  delivered %d  %.0f/s  connections open %d",
			n, el.Seconds(), pub.published.Load(), d, float64(d)/el.Seconds(), f.open())
	})
	if cfg.burst > 0 {
		pub.burst(ctx, cfg.burst, cfg.batch)
	} else {
		pub.steady(ctx, cfg.rate, cfg.duration, cfg.batch)
	}
	publishEnd := time.Now()
	published = pub.published.Load()
	expected := published * int64(recipients)
	// Wait for the deliveries: until all have arrived, -drain has passed, or
	// nothing arrives for a while once every connection is quiet.
	deadline := publishEnd.Add(cfg.drain)
	for f.delivered.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	stopProgress()
	s1 := probe.sample(ctx)
	loader1, _ := procCPU(os.Getpid())

	ph := phaseResult{
		Phase:        n,
		Recipients:   recipients,
		Published:    published,
		PublishFail:  pub.failed.Load(),
		Requests:     pub.requests.Load(),
		Expected:     expected,
		Stale:        f.stale.Load(),
		Unreadable:   f.badEvents.Load(),
		PublishSecs:  publishEnd.Sub(start).Seconds(),
		LoaderCPUSec: loader1 - loader0,
		OpenAfter:    f.open(),
		PostP50Ms:    ms(pub.postTime.Quantile(0.5)),
		PostMaxMs:    ms(pub.postTime.Max()),
	}
	if e, ok := pub.lastErr.Load().(string); ok {
		ph.PublishError = e
	}
	var lastRecv int64
	for _, c := range f.snapshot() {
		got := c.recv.Load()
		ph.Delivered += got
		ph.Duplicates += c.dup.Load()
		if miss := published - got; miss > 0 {
			ph.Lost += miss
			ph.ConnsMissing++
		}
		if t := c.lastRecv.Load(); t > lastRecv {
			lastRecv = t
		}
	}
	if lastRecv == 0 {
		lastRecv = end.UnixNano()
	}
	if span := time.Duration(lastRecv - start.UnixNano()); span > 0 {
		ph.Seconds = span.Seconds()
		ph.DeliveriesPerSec = float64(ph.Delivered) / span.Seconds()
	}
	if s0.CPU >= 0 && s1.CPU >= 0 {
		ph.HubCPUSeconds = s1.CPU - s0.CPU
		if ph.HubCPUSeconds > 0 {
			ph.DeliveriesPerCPUSec = float64(ph.Delivered) / ph.HubCPUSeconds
		}
	}
	if s0.Dropped >= 0 && s1.Dropped >= 0 {
		ph.HubDropped = s1.Dropped - s0.Dropped
	}
	if s0.SlowCloses >= 0 && s1.SlowCloses >= 0 {
		ph.HubSlowCloses = s1.SlowCloses - s0.SlowCloses
	}
	if s0.Writes >= 0 && s1.Writes >= 0 {
		ph.HubWrites = s1.Writes - s0.Writes
		if ph.HubWrites > 0 {
			ph.DeliveriesPerWrite = float64(ph.Delivered) / float64(ph.HubWrites)
		}
	}
	ph.Latency = latencyResult{
		Samples: int64(f.lat.Count()),
		P50Ms:   ms(f.lat.Quantile(0.50)),
		P90Ms:   ms(f.lat.Quantile(0.90)),
		P99Ms:   ms(f.lat.Quantile(0.99)),
		MaxMs:   ms(f.lat.Max()),
	}
	return ph
}

// progress prints line(el) every interval until the returned stop is called.
func progress(interval time.Duration, w io.Writer, line func(time.Duration) string) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
