package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"notifyhub/payloads"
)

type result struct {
	Config           resultConfig  `json:"config"`
	Connect          connectResult `json:"connect"`
	Memory           memResult     `json:"memory"`
	Phases           []phaseResult `json:"phases,omitempty"`
	Median           *phaseResult  `json:"median,omitempty"` // medians over the phases, field by field
	LoaderCPUSeconds float64       `json:"loader_cpu_seconds"`
}

type resultConfig struct {
	Hub          string                       `json:"hub"`
	Internal     string                       `json:"internal"`
	Tenant       string                       `json:"tenant"`
	Connections  int                          `json:"connections"`
	Protocol     string                       `json:"protocol"`
	Subscribe    payloads.SubscriptionRequest `json:"subscribe"`
	Sources      int                          `json:"source_addresses"`
	Negotiate    bool                         `json:"negotiate"`
	Rate         float64                      `json:"rate,omitempty"`
	Duration     string                       `json:"duration,omitempty"`
	Burst        int                          `json:"burst,omitempty"`
	Batch        int                          `json:"batch"`
	Repeat       int                          `json:"repeat"`
	PayloadBytes int                          `json:"payload_bytes"`
	PID          int                          `json:"pid,omitempty"`
	GoMaxProcs   int                          `json:"loader_gomaxprocs"`
}

type connectResult struct {
	Connected       int      `json:"connected"`
	Errors          int64    `json:"errors"`
	TopErrors       []string `json:"top_errors,omitempty"`
	Seconds         float64  `json:"seconds"`
	OpenAfterSettle int      `json:"open_after_settle"`
	OpenAtEnd       int      `json:"open_at_end"`
}

// memResult is the hub's growth from before connecting to after settling,
// per open connection. Nil (null) means "not available"; the before/after
// figures are -1 then.
type memResult struct {
	Connections         int      `json:"connections"`
	RSSBefore           int64    `json:"rss_before_bytes"`
	RSSAfter            int64    `json:"rss_after_bytes"`
	RSSPerConn          *float64 `json:"rss_per_conn_bytes"`
	HeapInusePerConn    *float64 `json:"heap_inuse_per_conn_bytes"`
	StackInusePerConn   *float64 `json:"stack_inuse_per_conn_bytes"`
	GoroutinesPerConn   *float64 `json:"goroutines_per_conn"`
	GoroutinesAfter     int64    `json:"goroutines_after"`
	HeapInuseAfterBytes int64    `json:"heap_inuse_after_bytes"`
}

func memoryResult(a, b hubSample, n int) memResult {
	per := func(x, y int64) *float64 {
		if x < 0 || y < 0 || n == 0 {
			return nil
		}
		v := float64(y-x) / float64(n)
		return &v
	}
	return memResult{
		Connections:         n,
		RSSBefore:           a.RSS,
		RSSAfter:            b.RSS,
		RSSPerConn:          per(a.RSS, b.RSS),
		HeapInusePerConn:    per(a.HeapInuse, b.HeapInuse),
		StackInusePerConn:   per(a.StackInuse, b.StackInuse),
		GoroutinesPerConn:   per(a.Goroutines, b.Goroutines),
		GoroutinesAfter:     b.Goroutines,
		HeapInuseAfterBytes: b.HeapInuse,
	}
}

type phaseResult struct {
	Phase               int           `json:"phase"`
	Recipients          int           `json:"recipients"`
	Published           int64         `json:"published"`
	PublishFail         int64         `json:"publish_failed"`
	PublishError        string        `json:"publish_error,omitempty"`
	Requests            int64         `json:"requests"`
	PostP50Ms           float64       `json:"publish_request_p50_ms"`
	PostMaxMs           float64       `json:"publish_request_max_ms"`
	Expected            int64         `json:"expected"`
	Delivered           int64         `json:"delivered"`
	Lost                int64         `json:"lost"`
	ConnsMissing        int64         `json:"connections_missing_some"`
	Duplicates          int64         `json:"duplicates"`
	Stale               int64         `json:"stale"`
	Unreadable          int64         `json:"unreadable"`
	PublishSecs         float64       `json:"publish_seconds"`
	Seconds             float64       `json:"seconds"` // first publish → last delivery
	DeliveriesPerSec    float64       `json:"deliveries_per_sec"`
	HubCPUSeconds       float64       `json:"hub_cpu_seconds"`
	DeliveriesPerCPUSec float64       `json:"deliveries_per_hub_cpu_sec"`
	LoaderCPUSec        float64       `json:"loader_cpu_seconds"`
	HubDropped          int64         `json:"hub_dropped"`
	HubSlowCloses       int64         `json:"hub_slow_consumer_closes"`
	HubWrites           int64         `json:"hub_write_syscalls"`   // with -pid: socket writes (and any other writes) of the hub
	DeliveriesPerWrite  float64       `json:"deliveries_per_write"` // how many frames the hub coalesced into one write
	OpenAfter           int           `json:"open_after"`
	Latency             latencyResult `json:"latency"`
}

type latencyResult struct {
	Samples int64   `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// summarize sets Median to the field-wise medians of the phases (counts of
// lost notifications are summed instead: one lost notification matters).
func (r *result) summarize() {
	if len(r.Phases) == 0 {
		return
	}
	med := func(get func(*phaseResult) float64) float64 {
		v := make([]float64, len(r.Phases))
		for i := range r.Phases {
			v[i] = get(&r.Phases[i])
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	m := phaseResult{Phase: 0, Recipients: r.Phases[0].Recipients}
	for _, p := range r.Phases {
		m.Published += p.Published
		m.PublishFail += p.PublishFail
		m.Requests += p.Requests
		m.Expected += p.Expected
		m.Delivered += p.Delivered
		m.Lost += p.Lost
		m.Duplicates += p.Duplicates
		m.Stale += p.Stale
		m.Unreadable += p.Unreadable
		m.HubDropped += p.HubDropped
		m.HubSlowCloses += p.HubSlowCloses
		m.HubWrites += p.HubWrites
		m.ConnsMissing = max(m.ConnsMissing, p.ConnsMissing)
	}
	m.PostP50Ms = med(func(p *phaseResult) float64 { return p.PostP50Ms })
	m.PostMaxMs = med(func(p *phaseResult) float64 { return p.PostMaxMs })
	m.PublishSecs = med(func(p *phaseResult) float64 { return p.PublishSecs })
	m.Seconds = med(func(p *phaseResult) float64 { return p.Seconds })
	m.DeliveriesPerSec = med(func(p *phaseResult) float64 { return p.DeliveriesPerSec })
	m.HubCPUSeconds = med(func(p *phaseResult) float64 { return p.HubCPUSeconds })
	m.DeliveriesPerCPUSec = med(func(p *phaseResult) float64 { return p.DeliveriesPerCPUSec })
	m.LoaderCPUSec = med(func(p *phaseResult) float64 { return p.LoaderCPUSec })
	m.DeliveriesPerWrite = med(func(p *phaseResult) float64 { return p.DeliveriesPerWrite })
	m.OpenAfter = r.Phases[len(r.Phases)-1].OpenAfter
	m.Latency = latencyResult{
		Samples: int64(med(func(p *phaseResult) float64 { return float64(p.Latency.Samples) })),
		P50Ms:   med(func(p *phaseResult) float64 { return p.Latency.P50Ms }),
		P90Ms:   med(func(p *phaseResult) float64 { return p.Latency.P90Ms }),
		P99Ms:   med(func(p *phaseResult) float64 { return p.Latency.P99Ms }),
		MaxMs:   med(func(p *phaseResult) float64 { return p.Latency.MaxMs }),
	}
	r.Median = &m
}

func (r *result) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *result) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Config
	mode := "connections only"
	switch {
	case c.Burst > 0:
		mode = fmt.Sprintf("burst %d in requests of %d", c.Burst, c.Batch)
	case c.Rate > 0:
		mode = fmt.Sprintf("%g/s for %s", c.Rate, c.Duration)
	}
	sub := c.Subscribe.Event
	if len(c.Subscribe.Resources) > 0 {
		sub += fmt.Sprintf(" [%s %v]", c.Subscribe.Resources[0].Name, c.Subscribe.Resources[0].Actions)
	}
	fmt.Fprintf(tw, "hub\t%s (%s, %s)\n", c.Hub, c.Protocol, sub)
	fmt.Fprintf(tw, "publish\t%s, %d B padding, %d phase(s)\n", mode, c.PayloadBytes, c.Repeat)
	fmt.Fprintf(tw, "connections\t%d of %d (%d errors) in %.1fs over %d source address(es); open at end %d\n",
		r.Connect.Connected, c.Connections, r.Connect.Errors, r.Connect.Seconds, c.Sources, r.Connect.OpenAtEnd)
	for _, e := range r.Connect.TopErrors {
		fmt.Fprintf(tw, "  connect error\t%s\n", e)
	}
	m := r.Memory
	fmt.Fprintf(tw, "hub memory\tRSS %s → %s: %s per connection\n", mib(m.RSSBefore), mib(m.RSSAfter), kib(m.RSSPerConn))
	fmt.Fprintf(tw, "  per connection\theap in use %s, stacks %s, goroutines %s\n", kib(m.HeapInusePerConn), kib(m.StackInusePerConn), num(m.GoroutinesPerConn))
	rows := r.Phases
	if r.Median != nil && len(r.Phases) > 1 {
		rows = append(rows, *r.Median)
	}
	if len(rows) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "phase\trecipients\tpublished\tdelivered\tlost\tdup\tdeliveries/s\thub CPU s\tdeliveries/hub CPU-s\tdeliveries/write\tp50 ms\tp90 ms\tp99 ms\tmax ms\tloader CPU s")
		for _, p := range rows {
			name := fmt.Sprint(p.Phase)
			if p.Phase == 0 {
				name = "median"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n",
				name, p.Recipients, p.Published, p.Delivered, p.Lost, p.Duplicates, p.DeliveriesPerSec,
				p.HubCPUSeconds, p.DeliveriesPerCPUSec, p.DeliveriesPerWrite, p.Latency.P50Ms, p.Latency.P90Ms, p.Latency.P99Ms, p.Latency.MaxMs, p.LoaderCPUSec)
		}
		var notes []string
		for _, p := range r.Phases {
			if p.PublishFail > 0 {
				notes = append(notes, fmt.Sprintf("phase %d: %d notifications not accepted (%s)", p.Phase, p.PublishFail, p.PublishError))
			}
			if p.HubDropped > 0 || p.HubSlowCloses > 0 {
				notes = append(notes, fmt.Sprintf("phase %d: hub dropped %d deliveries, closed %d slow connections", p.Phase, p.HubDropped, p.HubSlowCloses))
			}
			if p.Unreadable > 0 || p.Stale > 0 {
				notes = append(notes, fmt.Sprintf("phase %d: %d unreadable, %d late from an earlier phase", p.Phase, p.Unreadable, p.Stale))
			}
		}
		if len(notes) > 0 {
			fmt.Fprintf(tw, "\nnotes\t%s\n", strings.Join(notes, "\n\t"))
		}
	}
	fmt.Fprintf(tw, "loader CPU\t%.2f s in total\n", r.LoaderCPUSeconds)
	tw.Flush()
}

func kib(b *float64) string {
	if b == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f KiB", *b/1024)
}

func num(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", *v)
}
