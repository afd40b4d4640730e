package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in microseconds with under 1% relative error: 128
// exact buckets below 128 µs, then 64 buckets per power of two. Record is
// lock-free, so every connection's reader can record into one histogram.
type histogram struct {
	counts [128 + 64*40]atomic.Uint64
	max    atomic.Int64 // nanoseconds
	n      atomic.Uint64
}

func histIndex(us uint64) int {
	if us < 128 {
		return int(us)
	}
	e := bits.Len64(us) - 7 // ≥ 1
	i := 128 + (e-1)*64 + int(us>>e) - 64
	if i >= len((*histogram)(nil).counts) {
		i = len((*histogram)(nil).counts) - 1
	}
	return i
}

// histUpper returns the largest value (µs) that falls into bucket i.
func histUpper(i int) uint64 {
	if i < 128 {
		return uint64(i)
	}
	e := (i-128)/64 + 1
	sub := uint64((i-128)%64 + 64)
	return (sub+1)<<e - 1
}

// Record adds one duration; negative ones (clock steps) count as zero.
func (h *histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Reset empties the histogram (not concurrently with Record).
func (h *histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.max.Store(0)
	h.n.Store(0)
}

// Count returns the number of recorded values.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded duration.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the upper bound of the bucket that holds quantile q (0..1),
// never more than the maximum.
func (h *histogram) Quantile(q float64) time.Duration {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			d := time.Duration(histUpper(i)+1)*time.Microsecond - 1
			if m := h.Max(); d > m {
				d = m
			}
			return d
		}
	}
	return h.Max()
}
