package notify

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"notifyhub/payloads"
)

// WebhookMetrics receives the dispatcher's counts, e.g. for Prometheus.
type WebhookMetrics interface {
	// WebhookQueued counts deliveries added to endpoint queues.
	WebhookQueued(n int)
	// WebhookDropped counts deliveries not queued because their endpoint's
	// queue was full.
	WebhookDropped(n int)
	// WebhookAttempt counts one HTTP attempt by outcome ("success",
	// "http_error", "network_error") and its duration.
	WebhookAttempt(outcome string, d time.Duration)
	// WebhookFinished counts deliveries that ended, by status.
	WebhookFinished(status DeliveryStatus, n int)
	// WebhookDisabled counts endpoints disabled by the dispatcher.
	WebhookDisabled()
}

type noWebhookMetrics struct{}

func (noWebhookMetrics) WebhookQueued(int)                    {}
func (noWebhookMetrics) WebhookDropped(int)                   {}
func (noWebhookMetrics) WebhookAttempt(string, time.Duration) {}
func (noWebhookMetrics) WebhookFinished(DeliveryStatus, int)  {}
func (noWebhookMetrics) WebhookDisabled()                     {}

// DispatcherOptions configure a Dispatcher. Zero values take the defaults
// written beside them.
type DispatcherOptions struct {
	Store       Store        // required
	Client      *http.Client // default NewWebhookClient(false)
	Concurrency int          // HTTP attempts in flight at once, over all endpoints; default 16
	Timeout     time.Duration
	// RetryBase is the first retry's delay; each retry doubles it up to
	// RetryMax. RetryPeriod is how long after a delivery was queued it is
	// still attempted; when it passes, the delivery fails and its endpoint
	// is disabled. Defaults 5s, 1h, 24h.
	RetryBase, RetryMax, RetryPeriod time.Duration
	MaxPending                       int           // deliveries queued per endpoint; default 10000
	LogSize                          int           // finished deliveries kept per endpoint; default 100
	ScanInterval                     time.Duration // how often queues are looked for (resumed work, other nodes' queues); default 10s
	LeaseTTL                         time.Duration // with a Leaser: how long a node's claim on a queue lasts unrenewed; default 30s
	Logger                           *slog.Logger
	Metrics                          WebhookMetrics
	Now                              func() time.Time
}

func (o *DispatcherOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	if o.Client == nil {
		o.Client = NewWebhookClient(false)
	}
	defInt(&o.Concurrency, 16)
	defInt(&o.MaxPending, 10000)
	defInt(&o.LogSize, 100)
	def(&o.Timeout, 10*time.Second)
	def(&o.RetryBase, 5*time.Second)
	def(&o.RetryMax, time.Hour)
	def(&o.RetryPeriod, 24*time.Hour)
	def(&o.ScanInterval, 10*time.Second)
	def(&o.LeaseTTL, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = noWebhookMetrics{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Dispatcher queues a tenant's accepted notifications for its webhook
// endpoints and sends them.
//
// Enqueue runs where a publish is accepted (never in Deliver, which every
// node runs for every publish), after the notifications were handed to the
// backplane: sockets never wait for webhooks. The deliveries are stored
// before Enqueue returns, so an accepted notification survives a restart.
//
// Each endpoint with pending deliveries has one worker goroutine that sends
// them one at a time, oldest first: a delivery is only sent once the one
// before it was delivered or failed, so an endpoint sees its notifications
// in order. A failed attempt is retried with exponential backoff and jitter
// until RetryPeriod after the delivery was queued; then the delivery fails
// and the endpoint is disabled with the reason. At most Concurrency HTTP
// requests are in flight at once. With a Leaser store, a node works a queue
// only while it holds its lease, and every node looks for queues that no
// one works every ScanInterval, so another node takes over the queues of
// one that stopped.
type Dispatcher struct {
	opts  DispatcherOptions
	store Store
	lease Leaser // nil for stores of one node
	node  string // lease owner name
	log   *slog.Logger
	sem   chan struct{}

	mu      sync.Mutex
	ctx     context.Context // set while Run runs
	workers map[string]*worker
	wg      sync.WaitGroup
}

// worker is one endpoint's running queue loop.
type worker struct {
	again bool          // work may have arrived since the loop last looked
	wake  chan struct{} // interrupts a wait: the endpoint changed
}

// NewDispatcher returns a dispatcher; call Run to send.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	opts.setDefaults()
	node := make([]byte, 8)
	_, _ = crand.Read(node)
	d := &Dispatcher{
		opts:    opts,
		store:   opts.Store,
		node:    hex.EncodeToString(node),
		log:     opts.Logger,
		sem:     make(chan struct{}, opts.Concurrency),
		workers: map[string]*worker{},
	}
	d.lease, _ = opts.Store.(Leaser)
	return d
}

// Run sends queued deliveries until ctx ends, then waits for the workers.
// An attempt cut short by ctx is not recorded: it is sent again after the
// restart, with the same id.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.ctx = nil
		d.mu.Unlock()
		d.wg.Wait()
	}()
	t := time.NewTicker(d.opts.ScanInterval)
	defer t.Stop()
	for {
		d.scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scan starts a worker for every endpoint with pending deliveries.
func (d *Dispatcher) scan(ctx context.Context) {
	ids, err := d.store.PendingWebhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("webhooks: cannot list pending queues", "err", err)
		}
		return
	}
	for _, id := range ids {
		d.Kick(id)
	}
}

// Kick makes sure a worker looks at the endpoint's queue now, and wakes it
// if it is waiting to retry (call it after changing the endpoint).
func (d *Dispatcher) Kick(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil {
		return // not running: Run's first scan finds the queue
	}
	if w := d.workers[id]; w != nil {
		w.again = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
		return
	}
	w := &worker{wake: make(chan struct{}, 1)}
	d.workers[id] = w
	ctx := d.ctx
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.work(ctx, id, w)
	}()
}

// Enqueue queues ns, accepted for tenant at now, for every enabled endpoint
// of the tenant that matches them, and returns how many deliveries it
// queued. Notifications that have expired are not queued.
func (d *Dispatcher) Enqueue(ctx context.Context, tenant string, ns []payloads.Notification) (int, error) {
	hooks, err := d.store.Webhooks(ctx, tenant)
	if err != nil {
		return 0, fmt.Errorf("webhooks of tenant %q: %w", tenant, err)
	}
	hooks = slices.DeleteFunc(hooks, func(w Webhook) bool { return w.Disabled })
	if len(hooks) == 0 {
		return 0, nil
	}
	now := d.opts.Now().UTC()
	var ds []Delivery
	for i := range ns {
		n := &ns[i]
		if n.Expired(now) {
			continue
		}
		var body []byte
		id := newMessageID(now)
		for _, w := range hooks {
			if !WebhookMatches(&w, n) {
				continue
			}
			if body == nil {
				if body, err = webhookBody(id, tenant, now, n); err != nil {
					return 0, err
				}
			}
			ds = append(ds, Delivery{ID: id, Webhook: w.ID, Event: n.Event, Body: body, Status: DeliveryPending, CreatedAt: now, NextAttemptAt: now})
		}
	}
	if len(ds) == 0 {
		return 0, nil
	}
	full, err := d.store.Enqueue(ctx, ds, d.opts.MaxPending)
	if err != nil {
		return 0, fmt.Errorf("queue webhook deliveries: %w", err)
	}
	queued := len(ds)
	for _, id := range full {
		dropped := 0
		for _, del := range ds {
			if del.Webhook == id {
				dropped++
			}
		}
		queued -= dropped
		d.opts.Metrics.WebhookDropped(dropped)
		// A queue this long means the endpoint has not kept up for a long
		// time; stop queueing for it rather than grow without bound.
		d.disable(ctx, id, fmt.Sprintf("more than %d deliveries were pending", d.opts.MaxPending))
	}
	d.opts.Metrics.WebhookQueued(queued)
	kicked := map[string]bool{}
	for _, del := range ds {
		if !kicked[del.Webhook] && !slices.Contains(full, del.Webhook) {
			kicked[del.Webhook] = true
			d.Kick(del.Webhook)
		}
	}
	return queued, nil
}

// WebhookMatches reports whether an endpoint takes n: Events, when set,
// must name its event; Resources, when set, must name the resource of a
// resource event (notifications of other events are not filtered by it).
func WebhookMatches(w *Webhook, n *payloads.Notification) bool {
	if len(w.Events) > 0 && !slices.Contains(w.Events, n.Event) {
		return false
	}
	if len(w.Resources) > 0 && n.Routing.Resource != "" && !slices.Contains(w.Resources, n.Routing.Resource) {
		return false
	}
	return true
}

// WebhookPayload is the JSON body of a webhook request: the notification
// exactly as clients receive it (data), with its id, event, tenant, the
// time it was accepted and its routing.
type WebhookPayload struct {
	ID        string                 `json:"id"`
	Type      string                 `json:"type"`
	Tenant    string                 `json:"tenantId"`
	Timestamp time.Time              `json:"timestamp"`
	Route     *WebhookRoute          `json:"route,omitempty"`
	Data      *payloads.Notification `json:"data"`
}

// WebhookRoute is a notification's site and users (payloads.Routing).
type WebhookRoute struct {
	Site    string   `json:"site,omitempty"`
	Users   []string `json:"users,omitempty"`
	Private bool     `json:"private,omitempty"`
}

func webhookBody(id, tenant string, now time.Time, n *payloads.Notification) ([]byte, error) {
	p := WebhookPayload{ID: id, Type: n.Event, Tenant: tenant, Timestamp: now, Data: n}
	if r := n.Routing; r.Site != "" || len(r.Users) > 0 {
		p.Route = &WebhookRoute{Site: r.Site, Users: r.Users, Private: r.Private}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode webhook body: %w", err)
	}
	return b, nil
}

// work runs an endpoint's queue until it is empty, the endpoint is gone or
// disabled, another node holds its lease, or ctx ends.
func (d *Dispatcher) work(ctx context.Context, id string, w *worker) {
	emptied := d.drain(ctx, id, w)
	if d.lease != nil {
		// Released with a fresh context: ctx may be over, and the lease
		// should not outlive this node's interest in the queue.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := d.lease.Release(rctx, id, d.node); err != nil {
			d.log.Debug("webhooks: release lease", "webhook", id, "err", err)
		}
		// A delivery queued on another node between our last look and the
		// release found the lease taken and left it to us: look once more.
		if _, more, err := d.store.Head(rctx, id); emptied && err == nil && more {
			cancel()
			d.Kick(id)
			return
		}
		cancel()
	}
}

// drain is work's loop; it reports whether it stopped because the queue was
// empty.
func (d *Dispatcher) drain(ctx context.Context, id string, w *worker) (emptied bool) {
	for {
		d.mu.Lock()
		w.again = false
		d.mu.Unlock()
		if ctx.Err() != nil {
			d.finishWorker(id, w, true)
			return false
		}
		del, hook, ok := d.next(ctx, id)
		if !ok {
			if d.finishWorker(id, w, false) {
				return true
			}
			continue
		}
		if !d.waitUntil(ctx, id, w, del.NextAttemptAt) {
			continue // woken (the endpoint changed) or ctx ended: look again
		}
		d.attempt(ctx, hook, del)
	}
}

// finishWorker removes w unless more work arrived meanwhile (then it
// returns false and the loop goes on).
func (d *Dispatcher) finishWorker(id string, w *worker, force bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w.again && !force {
		return false
	}
	delete(d.workers, id)
	return true
}

// next returns the endpoint's head delivery, or false when there is
// nothing to send now: no lease, no endpoint, endpoint disabled, empty
// queue, or the store failed (the next scan tries again).
func (d *Dispatcher) next(ctx context.Context, id string) (Delivery, Webhook, bool) {
	if d.lease != nil {
		ok, err := d.lease.Lease(ctx, id, d.node, d.opts.LeaseTTL)
		if err != nil || !ok {
			if err != nil && ctx.Err() == nil {
				d.log.Warn("webhooks: cannot lease queue", "webhook", id, "err", err)
			}
			return Delivery{}, Webhook{}, false
		}
	}
	hook, found, err := d.store.Webhook(ctx, id)
	if err != nil || !found {
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhooks: cannot read endpoint", "webhook", id, "err", err)
		}
		return Delivery{}, Webhook{}, false
	}
	if hook.Disabled {
		// Deliveries queued while it was being disabled fail with it.
		n, err := d.store.FailPending(ctx, id, "the endpoint is disabled: "+hook.DisabledReason, d.opts.Now(), d.opts.LogSize)
		if err == nil && n > 0 {
			d.opts.Metrics.WebhookFinished(DeliveryFailed, n)
		}
		return Delivery{}, Webhook{}, false
	}
	for {
		del, found, err := d.store.Head(ctx, id)
		if err != nil || !found {
			if err != nil && ctx.Err() == nil {
				d.log.Warn("webhooks: cannot read queue", "webhook", id, "err", err)
			}
			return Delivery{}, Webhook{}, false
		}
		if expired(del, d.opts.Now()) {
			del.Status, del.Error, del.FinishedAt, del.NextAttemptAt = DeliveryFailed, "the notification expired (ea) before it could be delivered", d.opts.Now().UTC(), time.Time{}
			if err := d.store.Finish(ctx, del, d.opts.LogSize); err != nil {
				return Delivery{}, Webhook{}, false
			}
			d.opts.Metrics.WebhookFinished(DeliveryFailed, 1)
			continue
		}
		return del, hook, true
	}
}

// expired reports whether the notification in a delivery's body has an
// expiry (ea) that has passed.
func expired(d Delivery, now time.Time) bool {
	var p struct {
		Data struct {
			ExpiresAt *time.Time `json:"ea"`
		} `json:"data"`
	}
	if json.Unmarshal(d.Body, &p) != nil || p.Data.ExpiresAt == nil {
		return false
	}
	return !now.Before(*p.Data.ExpiresAt)
}

// waitUntil waits for at, renewing the lease meanwhile; false when it was
// woken or ctx ended.
func (d *Dispatcher) waitUntil(ctx context.Context, id string, w *worker, at time.Time) bool {
	for {
		left := at.Sub(d.opts.Now())
		if left <= 0 {
			return true
		}
		step := left
		if d.lease != nil && step > d.opts.LeaseTTL/3 {
			step = d.opts.LeaseTTL / 3
		}
		t := time.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-w.wake:
			t.Stop()
			return false
		case <-t.C:
		}
		if d.lease != nil {
			if ok, err := d.lease.Lease(ctx, id, d.node, d.opts.LeaseTTL); err != nil || !ok {
				return false
			}
		}
	}
}

// attempt sends del once and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, hook Webhook, del Delivery) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	start := d.opts.Now()
	status, err := d.send(ctx, hook, del, start)
	<-d.sem
	if ctx.Err() != nil {
		return // cut short by shutdown: not an attempt; it is sent again later
	}
	now := d.opts.Now()
	del.Attempts++
	del.LastAttemptAt, del.ResponseStatus = now.UTC(), status
	switch {
	case err == nil:
		d.opts.Metrics.WebhookAttempt("success", now.Sub(start))
		del.Status, del.Error, del.FinishedAt, del.NextAttemptAt = DeliveryDelivered, "", now.UTC(), time.Time{}
		if err := d.store.Finish(ctx, del, d.opts.LogSize); err != nil {
			d.log.Error("webhooks: cannot record a delivery; it will be sent again", "webhook", hook.ID, "delivery", del.ID, "err", err)
			return
		}
		d.opts.Metrics.WebhookFinished(DeliveryDelivered, 1)
		return
	case status != 0:
		d.opts.Metrics.WebhookAttempt("http_error", now.Sub(start))
	default:
		d.opts.Metrics.WebhookAttempt("network_error", now.Sub(start))
	}
	del.Error = err.Error()
	deadline := del.CreatedAt.Add(d.opts.RetryPeriod)
	var reason string
	switch {
	case status == http.StatusGone:
		reason = "the endpoint answered 410 Gone"
	case !now.Before(deadline):
		reason = fmt.Sprintf("deliveries failed for %v (%d attempts); last error: %s", d.opts.RetryPeriod, del.Attempts, del.Error)
	}
	if reason != "" {
		del.Status, del.FinishedAt, del.NextAttemptAt = DeliveryFailed, now.UTC(), time.Time{}
		if err := d.store.Finish(ctx, del, d.opts.LogSize); err != nil {
			d.log.Error("webhooks: cannot record a failed delivery", "webhook", hook.ID, "delivery", del.ID, "err", err)
			return
		}
		d.opts.Metrics.WebhookFinished(DeliveryFailed, 1)
		d.disable(ctx, hook.ID, reason)
		return
	}
	next := now.Add(d.backoff(del.Attempts))
	if next.After(deadline) {
		next = deadline // one last attempt when the period ends
	}
	del.NextAttemptAt = next.UTC()
	if err := d.store.SaveAttempt(ctx, del); err != nil {
		d.log.Error("webhooks: cannot record an attempt", "webhook", hook.ID, "delivery", del.ID, "err", err)
	}
	d.log.Debug("webhook attempt failed", "webhook", hook.ID, "delivery", del.ID, "attempt", del.Attempts, "err", del.Error, "next", del.NextAttemptAt)
}

// backoff is the wait after the n-th failed attempt: RetryBase doubled n-1
// times, at most RetryMax, of which a random half is taken off ("equal
// jitter") so that retries of many deliveries spread out.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.opts.RetryBase
	for i := 1; i < n && b < d.opts.RetryMax; i++ {
		b *= 2
	}
	b = min(b, d.opts.RetryMax)
	half := b / 2
	return half + rand.N(half+1)
}

// send POSTs del to the endpoint once; it returns the response status (0
// without a response) and an error unless the status is 2xx.
func (d *Dispatcher) send(ctx context.Context, hook Webhook, del Delivery, now time.Time) (int, error) {
	key, err := ParseWebhookSecret(hook.Secret)
	if err != nil {
		return 0, fmt.Errorf("the endpoint's secret is unusable: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(del.Body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "notifyhub-webhooks/1")
	req.Header.Set(HeaderWebhookID, del.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, SignWebhook(key, del.ID, now, del.Body))
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, fmt.Errorf("no response within %v", d.opts.Timeout)
		}
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if s := bytes.TrimSpace(snippet); len(s) > 0 {
		msg += ": " + string(s)
	}
	return resp.StatusCode, errors.New(msg)
}

// disable marks an endpoint disabled with reason and fails its pending
// deliveries.
func (d *Dispatcher) disable(ctx context.Context, id, reason string) {
	now := d.opts.Now().UTC()
	_, err := d.store.UpdateWebhook(ctx, id, func(w *Webhook) error {
		w.Disabled, w.DisabledReason, w.DisabledAt, w.UpdatedAt = true, reason, now, now
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			d.log.Error("webhooks: cannot disable endpoint", "webhook", id, "err", err)
		}
		return
	}
	n, err := d.store.FailPending(ctx, id, "the endpoint was disabled: "+reason, now, d.opts.LogSize)
	if err != nil {
		d.log.Error("webhooks: cannot fail the deliveries of a disabled endpoint", "webhook", id, "err", err)
	} else if n > 0 {
		d.opts.Metrics.WebhookFinished(DeliveryFailed, n)
	}
	d.opts.Metrics.WebhookDisabled()
	d.log.Warn("webhook endpoint disabled", "webhook", id, "reason", reason, "failed_deliveries", n)
}

// NewWebhookClient returns the HTTP client webhooks are sent with: no
// redirects followed, no proxy, and unless allowPrivate, no connections to
// loopback, private, link-local or otherwise non-public addresses. The check
// is made on the address actually dialled, so a DNS name that resolves to
// an internal address is refused too.
func NewWebhookClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !PublicIP(ip) {
				return fmt.Errorf("webhook target %s is not a public address (set HUB_WEBHOOK_ALLOW_PRIVATE to allow it)", host)
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// nonPublicV4 are the IPv4 ranges that are not globally reachable (IANA
// IPv4 Special-Purpose Address Registry), and multicast.
var nonPublicV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local (cloud metadata)
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
}

// IPv6 is public only within global unicast (2000::/3), outside the ranges
// of the IANA IPv6 Special-Purpose Address Registry that are not globally
// reachable. Loopback, unspecified, IPv4-compatible and -translated,
// discard-only, unique local, link-local, site-local and multicast
// addresses all lie outside 2000::/3.
var (
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	nonPublicV6     = []netip.Prefix{
		netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments: Teredo, benchmarking, ORCHID...
		netip.MustParsePrefix("2001:db8::/32"), // documentation
		netip.MustParsePrefix("3fff::/20"),     // documentation
	}
	// Addresses that carry an IPv4 address the packets go to, which
	// decides (as for IPv4-mapped addresses).
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix: the IPv4 address is the last 4 bytes
	sixToFour = netip.MustParsePrefix("2002::/16")    // 6to4: the IPv4 address is bytes 2-5
)

// PublicIP reports whether ip is a globally reachable unicast address, the
// only kind a webhook may be sent to without HUB_WEBHOOK_ALLOW_PRIVATE.
func PublicIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && publicAddr(a)
}

func publicAddr(a netip.Addr) bool {
	a = a.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	if a.Is4() {
		for _, p := range nonPublicV4 {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return publicAddr(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		return publicAddr(netip.AddrFrom4([4]byte(b[2:6])))
	case !globalUnicastV6.Contains(a):
		return false
	}
	for _, p := range nonPublicV6 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
