package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	return m
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
