package subscriptions

import (
	"fmt"
	"runtime"
	"testing"

	"notifyhub/payloads"
)

// BenchmarkMatch reports the cost of one Match. In "10k-spread", 10k
// connections are split across 100 resources, by turns whole resource,
// created, updated and deleted, and every 20th also has the whole event.
func BenchmarkMatch(b *testing.B) {
	b.Run("10k-spread", func(b *testing.B) {
		x := NewIndex[int]()
		sets := make([]Set, 10_000)
		for i := range sets {
			rf := payloads.ResourceFilter{Name: fmt.Sprintf("r%d", i%100)}
			if a := payloads.Action((i / 100) % 4); a != 0 {
				rf.Actions = []payloads.Action{a}
			}
			mustSub(b, x, "t1", i, &sets[i], payloads.Filter{Event: evRes, Resources: []payloads.ResourceFilter{rf}})
			if i%20 == 0 {
				mustSub(b, x, "t1", i, &sets[i], whole(evRes))
			}
		}
		benchMatch(b, x, "t1", evRes, rt("r7", created))
	})
	b.Run("10k-all-overlapping", func(b *testing.B) {
		// Every connection has the whole event, the resource and the action.
		x := NewIndex[int]()
		sets := make([]Set, 10_000)
		for i := range sets {
			mustSub(b, x, "t1", i, &sets[i], res(evRes, "tickets", created))
			mustSub(b, x, "t1", i, &sets[i], res(evRes, "tickets"))
			mustSub(b, x, "t1", i, &sets[i], whole(evRes))
		}
		benchMatch(b, x, "t1", evRes, rt("tickets", created))
	})
	// 10 of 100k connections match: the cost must be that of the 10.
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("%d-conns-10-match", n), func(b *testing.B) {
			x := NewIndex[int]()
			sets := make([]Set, n)
			for i := range sets {
				mustSub(b, x, "t1", i, &sets[i], res(evRes, fmt.Sprintf("r%d", i/10), created))
			}
			benchMatch(b, x, "t1", evRes, rt("r0", created))
		})
	}
	b.Run("miss", func(b *testing.B) {
		x := NewIndex[int]()
		mustSub(b, x, "t1", 1, &Set{}, res(evRes, "tickets", created))
		benchMatch(b, x, "t1", evRes, rt("orders", created))
	})
}

func benchMatch(b *testing.B, x *Index[int], tenant, event string, r payloads.Routing) {
	dst := make([]int, 0, x.Connections())
	n := len(x.Match(tenant, event, r, dst))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = x.Match(tenant, event, r, dst[:0])
	}
	b.ReportMetric(float64(n), "matches/op")
	if len(dst) != n {
		b.Fatalf("%d matches, then %d", n, len(dst))
	}
}

// BenchmarkMatchParallel runs Match in one tenant from all Ps at once.
func BenchmarkMatchParallel(b *testing.B) {
	x := NewIndex[int]()
	sets := make([]Set, 1000)
	for i := range sets {
		mustSub(b, x, "t1", i, &sets[i], res(evRes, fmt.Sprintf("r%d", i/10), created))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]int, 0, 16)
		for pb.Next() {
			dst = x.Match("t1", evRes, rt("r3", created), dst[:0])
		}
	})
}

func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	// 10k other connections share the nodes; the connection under test has
	// a standing entry, so its Set is not freed in between.
	setup := func(b *testing.B) (*Index[int], *Set) {
		x := NewIndex[int]()
		sets := make([]Set, 10_000)
		for i := range sets {
			mustSub(b, x, "t1", i, &sets[i], res(evRes, fmt.Sprintf("r%d", i%100), created))
		}
		s := &Set{}
		mustSub(b, x, "t1", -1, s, whole(evLic))
		return x, s
	}
	b.Run("action", func(b *testing.B) {
		x, s := setup(b)
		f := res(evRes, "r5", created)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x.Subscribe("t1", -1, s, f, 100); err != nil {
				b.Fatal(err)
			}
			x.Unsubscribe("t1", -1, s, f)
		}
	})
	b.Run("whole-event-covering-20", func(b *testing.B) {
		x, s := setup(b)
		for i := range 20 {
			mustSub(b, x, "t1", -1, s, res(evRes, fmt.Sprintf("r%d", i), created))
		}
		f := whole(evRes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := x.Subscribe("t1", -1, s, f, 100); err != nil {
				b.Fatal(err)
			}
			x.Unsubscribe("t1", -1, s, f)
		}
	})
	b.Run("connect-subscribe-disconnect", func(b *testing.B) {
		x, _ := setup(b)
		f := res(evRes, "r5", created, updated)
		b.ReportAllocs()
		for b.Loop() {
			var s Set
			if _, err := x.Subscribe("t1", -2, &s, f, 100); err != nil {
				b.Fatal(err)
			}
			x.RemoveAll("t1", -2, &s)
		}
	})
}

// BenchmarkMemoryPerConnection subscribes 100k connections of one tenant to
// one whole event and one resource+action (1000 resources) and reports the
// heap the index and the Sets' entries take per connection. The Set itself
// (a slice header) lives in the connection and is not counted.
func BenchmarkMemoryPerConnection(b *testing.B) {
	const n = 100_000
	var perConn float64
	for b.Loop() {
		perConn = memoryPerConnection(b, n)
	}
	b.ReportMetric(perConn, "B/conn")
}

func memoryPerConnection(tb testing.TB, n int) float64 {
	sets := make([]Set, n)
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("resource-%d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := NewIndex[int]()
	for i := range sets {
		if _, err := x.Subscribe("tenant", i, &sets[i], whole(evLic), 0); err != nil {
			tb.Fatal(err)
		}
		if _, err := x.Subscribe("tenant", i, &sets[i], res(evRes, names[i%len(names)], created), 0); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	runtime.KeepAlive(sets)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}
