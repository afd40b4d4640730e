package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"notifyhub/notify"
)

// metrics are the hub's Prometheus series, on a registry of its own so that
// several servers (tests) can live in one process.
type metrics struct {
	registry     *prometheus.Registry
	connections  *prometheus.GaugeVec
	connects     *prometheus.CounterVec
	notes        *prometheus.CounterVec
	slowClosed   prometheus.Counter
	rejected     *prometheus.CounterVec
	publishDelay prometheus.Histogram

	// resolved once: the fan-out path must not look labels up per call
	published, delivered, expired, dropped, encodeFailed prometheus.Counter

	backplaneUp         prometheus.Gauge
	backplaneReconnects prometheus.Counter
	backplaneMessages   map[string]prometheus.Counter // by outcome, all created up front

	webhookDeliveries *prometheus.CounterVec
	webhookAttempts   *prometheus.HistogramVec
	webhookDisabled   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "notifyhub_connections", Help: "Open hub connections by transport and protocol.",
		}, []string{"transport", "protocol"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notifyhub_connections_total", Help: "Hub connections that completed the handshake.",
		}, []string{"transport", "protocol"}),
		notes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notifyhub_notifications_total", Help: "Notifications by outcome: published (accepted), delivered (per recipient), expired, dropped (per recipient: slow or closed connection), encode_failed.",
		}, []string{"outcome"}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "notifyhub_slow_consumer_closes_total", Help: "Connections closed because their outbound queue was full.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notifyhub_rejected_total", Help: "Rejected inputs by reason.",
		}, []string{"reason"}),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "notifyhub_publish_duration_seconds", Help: "Time to accept and fan out one publish request.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.published = m.notes.WithLabelValues("published")
	m.delivered = m.notes.WithLabelValues("delivered")
	m.expired = m.notes.WithLabelValues("expired")
	m.dropped = m.notes.WithLabelValues("dropped")
	m.encodeFailed = m.notes.WithLabelValues("encode_failed")
	m.registry.MustRegister(m.connections, m.connects, m.notes, m.slowClosed, m.rejected, m.publishDelay,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.newBackplaneMetrics()
	m.newWebhookMetrics()
	return m
}

// newWebhookMetrics creates the webhook dispatcher's series, every label
// value up front.
func (m *metrics) newWebhookMetrics() {
	m.webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "notifyhub_webhook_deliveries_total", Help: "Webhook deliveries by outcome: queued, dropped (endpoint queue full), delivered, failed (retry period over, endpoint disabled or deleted, notification expired).",
	}, []string{"outcome"})
	m.webhookAttempts = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "notifyhub_webhook_attempt_duration_seconds", Help: "Webhook HTTP attempts by outcome (success, http_error, network_error) and duration.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"outcome"})
	m.webhookDisabled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "notifyhub_webhook_endpoints_disabled_total", Help: "Webhook endpoints disabled because their deliveries kept failing.",
	})
	for _, o := range []string{"queued", "dropped", "delivered", "failed"} {
		m.webhookDeliveries.WithLabelValues(o)
	}
	for _, o := range []string{"success", "http_error", "network_error"} {
		m.webhookAttempts.WithLabelValues(o)
	}
	m.registry.MustRegister(m.webhookDeliveries, m.webhookAttempts, m.webhookDisabled)
}

// newBackplaneMetrics creates the backplane's series. The message outcomes
// are created up front so that they are exported (as 0) before they happen.
func (m *metrics) newBackplaneMetrics() {
	m.backplaneUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "notifyhub_backplane_up", Help: "1 while publishes reach every node (always with one node), 0 while the Redis backplane is disconnected.",
	})
	m.backplaneReconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "notifyhub_backplane_reconnects_total", Help: "Attempts to reconnect to Redis after a failure.",
	})
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "notifyhub_backplane_messages_total", Help: "Redis backplane messages by outcome: published, publish_failed, received, decode_failed.",
	}, []string{"outcome"})
	m.backplaneMessages = map[string]prometheus.Counter{}
	for _, o := range []string{"published", "publish_failed", "received", "decode_failed"} {
		m.backplaneMessages[o] = messages.WithLabelValues(o)
	}
	m.registry.MustRegister(m.backplaneUp, m.backplaneReconnects, messages)
}

// watchIndex exports the subscription index's sizes.
func (m *metrics) watchIndex(stats func() (tenants, connections, entries int)) {
	gauge := func(name, help string, pick func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(pick()) })
	}
	m.registry.MustRegister(
		gauge("notifyhub_subscriptions", "Subscription entries held by connections.", func() int { _, _, e := stats(); return e }),
		gauge("notifyhub_subscribed_connections", "Connections holding at least one subscription.", func() int { _, c, _ := stats(); return c }),
		gauge("notifyhub_tenants", "Tenants with at least one subscription.", func() int { t, _, _ := stats(); return t }),
	)
}

// signalr.Metrics

func (m *metrics) Connected(transport, protocol string) {
	m.connections.WithLabelValues(transport, protocol).Inc()
	m.connects.WithLabelValues(transport, protocol).Inc()
}
func (m *metrics) Disconnected(transport, protocol string) {
	m.connections.WithLabelValues(transport, protocol).Dec()
}
func (m *metrics) SlowConsumer()          { m.slowClosed.Inc() }
func (m *metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// notify.Metrics

func (m *metrics) Published(n int) { m.published.Add(float64(n)) }
func (m *metrics) Delivered(n int) { m.delivered.Add(float64(n)) }
func (m *metrics) Expired()        { m.expired.Inc() }
func (m *metrics) Dropped(n int)   { m.dropped.Add(float64(n)) }
func (m *metrics) EncodeFailed()   { m.encodeFailed.Inc() }

// notify.BackplaneMetrics

func (m *metrics) BackplaneUp(up bool) {
	if up {
		m.backplaneUp.Set(1)
	} else {
		m.backplaneUp.Set(0)
	}
}
func (m *metrics) BackplaneReconnect() { m.backplaneReconnects.Inc() }
func (m *metrics) BackplaneMessage(outcome string) {
	if c := m.backplaneMessages[outcome]; c != nil {
		c.Inc()
	}
}

// notify.WebhookMetrics

func (m *metrics) WebhookQueued(n int) { m.webhookDeliveries.WithLabelValues("queued").Add(float64(n)) }
func (m *metrics) WebhookDropped(n int) {
	m.webhookDeliveries.WithLabelValues("dropped").Add(float64(n))
}
func (m *metrics) WebhookAttempt(outcome string, d time.Duration) {
	m.webhookAttempts.WithLabelValues(outcome).Observe(d.Seconds())
}
func (m *metrics) WebhookFinished(status notify.DeliveryStatus, n int) {
	m.webhookDeliveries.WithLabelValues(string(status)).Add(float64(n))
}
func (m *metrics) WebhookDisabled() { m.webhookDisabled.Inc() }

// watchQueues exports the frames waiting in outbound queues (all endpoints).
func (m *metrics) watchQueues(queued func() int64) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "notifyhub_outbound_queued_frames",
		Help: "Frames waiting in connections' outbound queues: the backlog between fan-out and the sockets.",
	}, func() float64 { return float64(queued()) }))
}
