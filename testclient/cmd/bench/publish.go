package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"notifyhub/payloads"
	"notifyhub/testclient"
)

// publisher posts the tool's notifications: each carries its sequence number
// in "r" and its send time in "ca" (nanoseconds), so receivers can count what
// is lost and measure latency without any other channel.
type publisher struct {
	cfg     *config
	pub     *testclient.Publisher
	next    int64 // next sequence number
	padding string

	published atomic.Int64 // accepted by the hub in this phase
	requests  atomic.Int64
	failed    atomic.Int64 // notifications in refused or failed requests
	lastErr   atomic.Value // string
	postTime  histogram    // duration of each publish request
}

func newPublisher(cfg *config, pub *testclient.Publisher) *publisher {
	return &publisher{cfg: cfg, pub: pub, next: 1, padding: strings.Repeat("x", cfg.payloadBytes)}
}

// body encodes count notifications starting at sequence number seq, all sent now.
func (p *publisher) body(dst []byte, seq int64, count int, now time.Time) []byte {
	ca := now.UTC().AppendFormat(nil, time.RFC3339Nano)
	dst = append(dst, '[')
	for i := 0; i < count; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"e":"`...)
		dst = append(dst, p.cfg.event...)
		dst = append(dst, `","r":"`...)
		dst = appendSeq(dst, seq+int64(i))
		dst = append(dst, `","ca":"`...)
		dst = append(dst, ca...)
		dst = append(dst, `","p":`...)
		if p.cfg.filtered() || p.cfg.resourceEvent() {
			dst = append(dst, `{"n":"`...)
			dst = append(dst, p.cfg.resource...)
			dst = append(dst, `","a":`...)
			dst = appendSeq(dst, int64(p.cfg.actionNumber()))
			dst = append(dst, `,"i":{"i":"`...)
			dst = appendSeq(dst, seq+int64(i))
			dst = append(dst, `","n":"bench","v":1},"r":[{"pad":"`...)
			dst = append(dst, p.padding...)
			dst = append(dst, `"}]}}`...)
		} else {
			dst = append(dst, `{"pad":"`...)
			dst = append(dst, p.padding...)
			dst = append(dst, `"}}`...)
		}
	}
	return append(dst, ']')
}

// post publishes count notifications as one request.
func (p *publisher) post(ctx context.Context, buf []byte, count int) []byte {
	seq := p.next
	p.next += int64(count)
	start := time.Now()
	buf = p.body(buf[:0], seq, count, start)
	res, err := p.pub.Publish(ctx, p.cfg.tenant, buf)
	p.postTime.Record(time.Since(start))
	p.requests.Add(1)
	switch {
	case err != nil:
		p.failed.Add(int64(count))
		p.lastErr.Store(err.Error())
	case res.Status != 202:
		p.failed.Add(int64(count))
		p.lastErr.Store(fmt.Sprintf("HTTP %d: %s %s", res.Status, res.Error, res.Field))
	default:
		p.published.Add(int64(res.Accepted))
		if res.Accepted != count {
			p.failed.Add(int64(count - res.Accepted))
		}
	}
	return buf
}

func (p *publisher) resetPhase() {
	p.published.Store(0)
	p.requests.Store(0)
	p.failed.Store(0)
	p.postTime.Reset()
}

// burst publishes total notifications in batches of batch, back to back.
func (p *publisher) burst(ctx context.Context, total, batch int) {
	var buf []byte
	for sent := 0; sent < total && ctx.Err() == nil; {
		n := min(batch, total-sent)
		buf = p.post(ctx, buf, n)
		sent += n
	}
}

// steady publishes rate notifications per second for d. Each tick sends what
// is due, so a slow request is caught up by the next one.
func (p *publisher) steady(ctx context.Context, rate float64, d time.Duration, maxBatch int) {
	interval := time.Duration(float64(time.Second) / rate)
	interval = max(time.Millisecond, min(interval, time.Second))
	t := time.NewTicker(interval)
	defer t.Stop()
	start := time.Now()
	end := start.Add(d)
	var buf []byte
	sent := 0
	for {
		now := time.Now()
		due := int(now.Sub(start).Seconds()*rate) - sent
		if now.After(end) {
			due = int(d.Seconds()*rate) - sent
		}
		for due > 0 && ctx.Err() == nil {
			n := min(due, maxBatch)
			buf = p.post(ctx, buf, n)
			sent += n
			due -= n
		}
		if !now.Before(end) || ctx.Err() != nil {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// eventFor returns the default event of a subscribe mode.
func eventFor(mode string) string {
	if mode == "filter" {
		return payloads.EventResourcesChanged
	}
	return payloads.EventLicenceActivated
}
