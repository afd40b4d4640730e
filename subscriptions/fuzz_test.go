package subscriptions

import (
	"errors"
	"math/bits"
	"slices"
	"testing"

	"notifyhub/payloads"
)

// The fuzzed world: 8 connections, connection i in tenant i%2 with handle
// i/2, so that both tenants use the same handle values; 2 events and 3
// resources. Names past the end of the lists ("other") are never subscribed
// to and only appear in notifications.
var (
	fuzzTenants   = []string{"A", "B"}
	fuzzEvents    = []string{evRes, evLic, "other.event"}
	fuzzResources = []string{"tickets", "orders", "stock", "other"}
)

const (
	fuzzConns        = 8
	fuzzSubEvents    = 2
	fuzzSubResources = 3
	fuzzKeysPerEvent = 1 + fuzzSubResources*(1+int(payloads.MaxAction))
	// fuzzMaxInput bounds the bytes used: the fuzzer minimizes every new
	// input in time quadratic in its length, so long ones stall fuzzing.
	fuzzMaxInput = 160
)

func fuzzTenant(i int) string { return fuzzTenants[i%2] }
func fuzzHandle(i int) int    { return i / 2 }

// model is the obviously correct reference: one bit per possible entry for
// each connection, and matching by looking at every connection.
type model [fuzzConns]uint32

// key is the bit of an entry: resource -1 is the whole event, action 0 the
// whole resource.
func key(event, resource int, a payloads.Action) uint32 {
	if resource < 0 {
		return 1 << (event * fuzzKeysPerEvent)
	}
	return 1 << (event*fuzzKeysPerEvent + 1 + resource*(1+int(payloads.MaxAction)) + int(a))
}

func (m *model) subscribe(c int, keys uint32, limit int) (int, bool) {
	fresh := bits.OnesCount32(keys &^ m[c])
	if limit > 0 && fresh > 0 && bits.OnesCount32(m[c])+fresh > limit {
		return 0, false
	}
	m[c] |= keys
	return fresh, true
}

func (m *model) unsubscribe(c int, keys uint32) int {
	n := bits.OnesCount32(keys & m[c])
	m[c] &^= keys
	return n
}

func (m *model) matches(c, event, resource int, a payloads.Action) bool {
	if event >= fuzzSubEvents {
		return false
	}
	if m[c]&key(event, -1, 0) != 0 {
		return true
	}
	if resource < 0 || resource >= fuzzSubResources {
		return false
	}
	return m[c]&key(event, resource, 0) != 0 || a.Valid() && m[c]&key(event, resource, a) != 0
}

// FuzzIndex applies a sequence of Subscribe, Unsubscribe and RemoveAll decoded
// from the input to an Index and to the model, and checks after every step
// that they agree on the results, the counters and every possible Match.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 4, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 1, 0, 0, 1, 1, 0, 5, 1, 0, 0, 0})
	f.Add([]byte{0, 3, 0, 3, 0, 3, 0, 1, 3, 1, 1, 0, 3, 2, 2, 0, 1, 0, 4, 3, 0, 0, 0, 7, 3})
	f.Add([]byte{1, 2, 1, 0, 0, 2, 0, 0, 0, 0, 0, 2, 4, 2, 1, 1, 0, 1, 7, 2, 7, 2})
	f.Fuzz(runOps)
}

func runOps(t *testing.T, data []byte) {
	data = data[:min(len(data), fuzzMaxInput)]
	x := NewIndex[int]()
	var m model
	sets := make([]Set, fuzzConns)
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	// filter decodes a filter (duplicates and all) and the model keys of it.
	filter := func() (payloads.Filter, uint32) {
		ev := next() % fuzzSubEvents
		f := payloads.Filter{Event: fuzzEvents[ev]}
		keys := uint32(0)
		for range next() % 4 {
			res := next() % fuzzSubResources
			r := payloads.ResourceFilter{Name: fuzzResources[res]}
			for range next() % 4 {
				a := payloads.Action(1 + next()%int(payloads.MaxAction))
				r.Actions = append(r.Actions, a)
				keys |= key(ev, res, a)
			}
			if len(r.Actions) == 0 {
				keys |= key(ev, res, 0)
			}
			f.Resources = append(f.Resources, r)
		}
		if len(f.Resources) == 0 {
			keys = key(ev, -1, 0)
		}
		return f, keys
	}
	for step := 0; len(data) > 0; step++ {
		kind, c := next()%8, next()%fuzzConns
		tn, h, s := fuzzTenant(c), fuzzHandle(c), &sets[c]
		switch {
		case kind < 4:
			f, keys := filter()
			limit := next() % 6
			got, err := x.Subscribe(tn, h, s, f, limit)
			want, ok := m.subscribe(c, keys, limit)
			if got != want || (err == nil) != ok || err != nil && !errors.Is(err, ErrTooManySubscriptions) {
				t.Fatalf("step %d: conn %d Subscribe(%v, limit %d) = %d, %v; model %d, ok %v", step, c, f, limit, got, err, want, ok)
			}
		case kind < 7:
			f, keys := filter()
			if got, want := x.Unsubscribe(tn, h, s, f), m.unsubscribe(c, keys); got != want {
				t.Fatalf("step %d: conn %d Unsubscribe(%v) = %d; model %d", step, c, f, got, want)
			}
		default:
			x.RemoveAll(tn, h, s)
			m[c] = 0
		}
		check(t, x, &m, sets, c%2)
		if step%4 == 0 {
			check(t, x, &m, sets, 1-c%2)
		}
	}
	check(t, x, &m, sets, 0)
	check(t, x, &m, sets, 1)
	for c := range sets {
		x.RemoveAll(fuzzTenant(c), fuzzHandle(c), &sets[c])
	}
	if x.Tenants()+x.Connections()+x.Entries()+x.Nodes() != 0 {
		t.Fatalf("after RemoveAll of all: Tenants %d Connections %d Entries %d Nodes %d",
			x.Tenants(), x.Connections(), x.Entries(), x.Nodes())
	}
}

// check compares the index with the model: the counters, every Set's length,
// and Match in tenant tn for every event (subscribable or not) with a zero
// Routing and with every resource (and an unknown one) and action (and the
// invalid 0).
func check(t *testing.T, x *Index[int], m *model, sets []Set, tn int) {
	t.Helper()
	entries, conns, tenants := 0, 0, [2]bool{}
	for c := range sets {
		n := bits.OnesCount32(m[c])
		if got := sets[c].Len(); got != n {
			t.Fatalf("conn %d: Len %d, model %d", c, got, n)
		}
		if n > 0 {
			entries += n
			conns++
			tenants[c%2] = true
		}
	}
	nt := 0
	for _, has := range tenants {
		if has {
			nt++
		}
	}
	if x.Entries() != entries || x.Connections() != conns || x.Tenants() != nt {
		t.Fatalf("Entries %d Connections %d Tenants %d; model %d, %d, %d",
			x.Entries(), x.Connections(), x.Tenants(), entries, conns, nt)
	}
	if conns == 0 && x.Nodes() != 0 {
		t.Fatalf("nothing subscribed but %d nodes", x.Nodes())
	}
	var gotBuf, wantBuf [fuzzConns]int
	for ev := range fuzzEvents {
		for res := -1; res < len(fuzzResources); res++ {
			for a := range payloads.MaxAction + 1 {
				if res < 0 && a > 0 {
					break
				}
				r := payloads.Routing{Action: a}
				if res >= 0 {
					r.Resource = fuzzResources[res]
				}
				got := x.Match(fuzzTenants[tn], fuzzEvents[ev], r, gotBuf[:0])
				slices.Sort(got)
				want := wantBuf[:0]
				for c := tn; c < fuzzConns; c += 2 {
					if m.matches(c, ev, res, a) {
						want = append(want, fuzzHandle(c))
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("Match(%s, %s, %+v) = %v; model %v (model %b)", fuzzTenants[tn], fuzzEvents[ev], r, got, want, *m)
				}
			}
		}
	}
}
