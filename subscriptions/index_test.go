package subscriptions

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"notifyhub/payloads"
)

const (
	evRes = payloads.EventResourcesChanged
	evLic = payloads.EventLicenceActivated
)

var (
	created = payloads.ActionCreated
	updated = payloads.ActionUpdated
	deleted = payloads.ActionDeleted
)

// whole is a whole-event filter.
func whole(event string) payloads.Filter { return payloads.Filter{Event: event} }

// res is a filter for one resource and, optionally, some of its actions.
func res(event, name string, actions ...payloads.Action) payloads.Filter {
	return payloads.Filter{Event: event, Resources: []payloads.ResourceFilter{{Name: name, Actions: actions}}}
}

func rt(name string, a payloads.Action) payloads.Routing {
	return payloads.Routing{Resource: name, Action: a}
}

// matchSorted returns Match's result sorted, failing on duplicates.
func matchSorted(t testing.TB, x *Index[int], tenant, event string, r payloads.Routing) []int {
	t.Helper()
	got := x.Match(tenant, event, r, nil)
	slices.Sort(got)
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("Match(%s, %s, %+v) = %v: connection %d twice", tenant, event, r, got, got[i])
		}
	}
	return got
}

type op struct {
	unsub bool
	f     payloads.Filter
	n     int // entries added or removed
}

type probe struct {
	event string
	r     payloads.Routing
	want  bool
}

func TestSubscribeUnsubscribeSemantics(t *testing.T) {
	tickets := func(a payloads.Action) payloads.Routing { return rt("tickets", a) }
	tests := []struct {
		name    string
		ops     []op
		entries int
		probes  []probe
	}{
		{
			name:    "whole event matches every resource, action and routing",
			ops:     []op{{f: whole(evRes), n: 1}},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, rt("orders", deleted), true},
				{evRes, payloads.Routing{}, true},
				{evLic, payloads.Routing{}, false},
			},
		},
		{
			name:    "whole resource matches every action of that resource only",
			ops:     []op{{f: res(evRes, "tickets"), n: 1}},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), true},
				{evRes, tickets(deleted), true},
				{evRes, rt("orders", created), false},
				{evRes, payloads.Routing{}, false},
				{evLic, tickets(created), false},
			},
		},
		{
			name:    "actions filter",
			ops:     []op{{f: res(evRes, "tickets", created, deleted), n: 2}},
			entries: 2,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), false},
				{evRes, tickets(deleted), true},
				{evRes, rt("orders", created), false},
				{evRes, rt("tickets", 0), false},
			},
		},
		{
			name: "unsubscribing the whole event takes exactly that away",
			ops: []op{
				{f: whole(evRes), n: 1},
				{f: res(evRes, "tickets", created), n: 1},
				{unsub: true, f: whole(evRes), n: 1},
			},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), false},
				{evRes, rt("orders", created), false},
				{evRes, payloads.Routing{}, false},
			},
		},
		{
			name: "unsubscribing the whole resource leaves its action entries",
			ops: []op{
				{f: res(evRes, "tickets", created), n: 1},
				{f: res(evRes, "tickets"), n: 1},
				{unsub: true, f: res(evRes, "tickets"), n: 1},
			},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(deleted), false},
			},
		},
		{
			name: "unsubscribing an entry the connection does not have changes nothing",
			ops: []op{
				{f: whole(evRes), n: 1},
				{unsub: true, f: res(evRes, "tickets", created), n: 0},
				{unsub: true, f: res(evRes, "tickets"), n: 0},
				{unsub: true, f: whole(evLic), n: 0},
			},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, rt("orders", updated), true},
			},
		},
		{
			name: "unsubscribing one action keeps the others",
			ops: []op{
				{f: res(evRes, "tickets", created, updated, deleted), n: 3},
				{unsub: true, f: res(evRes, "tickets", updated), n: 1},
			},
			entries: 2,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), false},
				{evRes, tickets(deleted), true},
			},
		},
		{
			name: "a broader entry added later covers, and removing it uncovers",
			ops: []op{
				{f: res(evRes, "tickets", created), n: 1},
				{f: res(evRes, "orders"), n: 1},
				{f: whole(evRes), n: 1},
				{unsub: true, f: whole(evRes), n: 1},
			},
			entries: 2,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), false},
				{evRes, rt("orders", deleted), true},
				{evRes, rt("stock", deleted), false},
			},
		},
		{
			name: "several resources in one filter, duplicates counted once",
			ops: []op{{f: payloads.Filter{Event: evRes, Resources: []payloads.ResourceFilter{
				{Name: "tickets", Actions: []payloads.Action{created, created}},
				{Name: "orders"},
				{Name: "tickets", Actions: []payloads.Action{created}},
				{Name: "orders"},
			}}, n: 2}},
			entries: 2,
			probes: []probe{
				{evRes, tickets(created), true},
				{evRes, tickets(updated), false},
				{evRes, rt("orders", updated), true},
			},
		},
		{
			name: "the same filter unsubscribes what it subscribed",
			ops: []op{
				{f: res(evRes, "tickets", created, deleted), n: 2},
				{f: whole(evLic), n: 1},
				{unsub: true, f: res(evRes, "tickets", created, deleted), n: 2},
			},
			entries: 1,
			probes: []probe{
				{evRes, tickets(created), false},
				{evRes, tickets(deleted), false},
				{evLic, payloads.Routing{}, true},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex[int]()
			var s Set
			for i, o := range tc.ops {
				var n int
				if o.unsub {
					n = x.Unsubscribe("t1", 1, &s, o.f)
				} else {
					var err error
					if n, err = x.Subscribe("t1", 1, &s, o.f, 0); err != nil {
						t.Fatalf("op %d: Subscribe(%v): %v", i, o.f, err)
					}
				}
				if n != o.n {
					t.Fatalf("op %d (unsub %v, %v) changed %d entries, want %d", i, o.unsub, o.f, n, o.n)
				}
			}
			if s.Len() != tc.entries || x.Entries() != tc.entries {
				t.Errorf("Len %d, Entries %d, want %d", s.Len(), x.Entries(), tc.entries)
			}
			for _, p := range tc.probes {
				got := matchSorted(t, x, "t1", p.event, p.r)
				if want := p.want; (len(got) == 1) != want || len(got) > 1 {
					t.Errorf("Match(%s, %+v) = %v, want match %v", p.event, p.r, got, want)
				}
			}
		})
	}
}

func TestIdempotent(t *testing.T) {
	x := NewIndex[int]()
	var s Set
	f := payloads.Filter{Event: evRes, Resources: []payloads.ResourceFilter{
		{Name: "tickets", Actions: []payloads.Action{created, updated}}, {Name: "orders"},
	}}
	for i, want := range []int{3, 0, 0} {
		if n, err := x.Subscribe("t1", 1, &s, f, 3); err != nil || n != want {
			t.Fatalf("Subscribe #%d = %d, %v; want %d, nil", i, n, err, want)
		}
	}
	if s.Len() != 3 || x.Entries() != 3 || x.Connections() != 1 {
		t.Fatalf("after subscribing: Len %d Entries %d Connections %d", s.Len(), x.Entries(), x.Connections())
	}
	for i, want := range []int{3, 0, 0} {
		if n := x.Unsubscribe("t1", 1, &s, f); n != want {
			t.Fatalf("Unsubscribe #%d = %d, want %d", i, n, want)
		}
	}
	if s.e != nil {
		t.Errorf("the Set of a connection without entries holds %d bytes", cap(s.e)*int(unsafe.Sizeof(entry{})))
	}
	if s.Len() != 0 || x.Entries() != 0 || x.Connections() != 0 || x.Tenants() != 0 || x.Nodes() != 0 {
		t.Fatalf("after unsubscribing: Len %d Entries %d Connections %d Tenants %d Nodes %d",
			s.Len(), x.Entries(), x.Connections(), x.Tenants(), x.Nodes())
	}
}

func TestMatchDeduplicates(t *testing.T) {
	x := NewIndex[int]()
	sets := make([]Set, 6)
	subs := [][]payloads.Filter{
		0: {whole(evRes), res(evRes, "tickets"), res(evRes, "tickets", created)},
		1: {res(evRes, "tickets"), res(evRes, "tickets", created, updated)},
		2: {res(evRes, "tickets", created), whole(evRes)},
		3: {res(evRes, "tickets", created)},
		4: {res(evRes, "tickets", updated), res(evRes, "orders")},
		5: {whole(evLic)},
	}
	for c, fs := range subs {
		for _, f := range fs {
			if _, err := x.Subscribe("t1", c, &sets[c], f, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		r    payloads.Routing
		want []int
	}{
		{rt("tickets", created), []int{0, 1, 2, 3}},
		{rt("tickets", updated), []int{0, 1, 2, 4}},
		{rt("tickets", deleted), []int{0, 1, 2}},
		{rt("orders", deleted), []int{0, 2, 4}},
		{payloads.Routing{}, []int{0, 2}},
	} {
		if got := matchSorted(t, x, "t1", evRes, tc.r); !slices.Equal(got, tc.want) {
			t.Errorf("Match(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestNonResourceEvents(t *testing.T) {
	x := NewIndex[int]()
	var a, b Set
	mustSub(t, x, "t1", 1, &a, whole(evLic))
	mustSub(t, x, "t1", 2, &b, res(evRes, "tickets"))
	if got := matchSorted(t, x, "t1", evLic, payloads.Routing{}); !slices.Equal(got, []int{1}) {
		t.Errorf("licence event matched %v, want [1]", got)
	}
	// A zero Routing of a resource event reaches whole-event entries only.
	if got := matchSorted(t, x, "t1", evRes, payloads.Routing{}); len(got) != 0 {
		t.Errorf("zero routing matched %v, want none", got)
	}
	// An action without a resource, or an unknown action, adds nothing.
	if got := matchSorted(t, x, "t1", evRes, rt("", created)); len(got) != 0 {
		t.Errorf("routing without resource matched %v", got)
	}
	if got := matchSorted(t, x, "t1", evRes, rt("tickets", 9)); !slices.Equal(got, []int{2}) {
		t.Errorf("unknown action matched %v, want the whole-resource subscriber", got)
	}
}

func TestTenantIsolation(t *testing.T) {
	x := NewIndex[int]()
	var a1, a2, b1 Set
	// The same handle value in two tenants: still two separate connections.
	mustSub(t, x, "A", 1, &a1, whole(evRes))
	mustSub(t, x, "A", 2, &a2, res(evRes, "tickets", created))
	mustSub(t, x, "B", 1, &b1, res(evRes, "tickets", created))
	if x.Tenants() != 2 || x.Connections() != 3 {
		t.Fatalf("Tenants %d Connections %d, want 2 and 3", x.Tenants(), x.Connections())
	}
	if got := matchSorted(t, x, "A", evRes, rt("tickets", created)); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("tenant A matched %v", got)
	}
	if got := matchSorted(t, x, "B", evRes, rt("orders", created)); len(got) != 0 {
		t.Errorf("tenant B got tenant A's whole-event subscriber: %v", got)
	}
	if got := matchSorted(t, x, "C", evRes, rt("tickets", created)); len(got) != 0 {
		t.Errorf("unknown tenant matched %v", got)
	}
	x.RemoveAll("A", 1, &a1)
	x.RemoveAll("A", 2, &a2)
	if got := matchSorted(t, x, "B", evRes, rt("tickets", created)); !slices.Equal(got, []int{1}) {
		t.Errorf("tenant B after A left: %v", got)
	}
	// Unsubscribing in the wrong tenant finds nothing to remove.
	if n := x.Unsubscribe("A", 1, &Set{}, res(evRes, "tickets", created)); n != 0 {
		t.Errorf("Unsubscribe in another tenant removed %d", n)
	}
	if x.Tenants() != 1 {
		t.Errorf("Tenants %d, want 1", x.Tenants())
	}
}

func TestSetUsedWithAnotherTenantPanics(t *testing.T) {
	x := NewIndex[int]()
	var s Set
	mustSub(t, x, "A", 1, &s, whole(evRes))
	mustSub(t, x, "B", 9, &Set{}, whole(evRes))
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	x.RemoveAll("B", 1, &s)
}

func TestLimit(t *testing.T) {
	x := NewIndex[int]()
	var s Set
	if n, err := x.Subscribe("t1", 1, &s, res(evRes, "tickets", created, updated), 3); n != 2 || err != nil {
		t.Fatalf("Subscribe = %d, %v", n, err)
	}
	nodes := x.Nodes()
	n, err := x.Subscribe("t1", 1, &s, res(evRes, "orders", created, updated), 3)
	if !errors.Is(err, ErrTooManySubscriptions) || n != 0 {
		t.Fatalf("Subscribe over the limit = %d, %v; want ErrTooManySubscriptions", n, err)
	}
	for _, num := range []string{"2", "3"} {
		if !strings.Contains(err.Error(), num) {
			t.Errorf("error %q does not give the numbers", err)
		}
	}
	if s.Len() != 2 || x.Entries() != 2 || x.Nodes() != nodes {
		t.Errorf("failed Subscribe changed the index: Len %d Entries %d Nodes %d (was %d)", s.Len(), x.Entries(), x.Nodes(), nodes)
	}
	if got := matchSorted(t, x, "t1", evRes, rt("orders", created)); len(got) != 0 {
		t.Errorf("failed Subscribe matches: %v", got)
	}
	// Entries the connection has do not count again; duplicates count once.
	if n, err := x.Subscribe("t1", 1, &s, res(evRes, "tickets", created, updated), 2); n != 0 || err != nil {
		t.Errorf("resubscribing at the limit = %d, %v", n, err)
	}
	if n, err := x.Subscribe("t1", 1, &s, res(evRes, "tickets", deleted, deleted, created), 3); n != 1 || err != nil {
		t.Errorf("duplicate actions = %d, %v; want 1, nil", n, err)
	}
	// Unlimited.
	if _, err := x.Subscribe("t1", 1, &s, whole(evLic), 0); err != nil {
		t.Errorf("limit 0: %v", err)
	}
	// A refused first subscription of a new tenant leaves nothing behind.
	y := NewIndex[int]()
	if _, err := y.Subscribe("t2", 1, &Set{}, res(evRes, "a", created, updated), 1); !errors.Is(err, ErrTooManySubscriptions) {
		t.Fatalf("err = %v", err)
	}
	if y.Tenants() != 0 || y.Nodes() != 0 || y.Connections() != 0 {
		t.Errorf("refused Subscribe left Tenants %d Nodes %d Connections %d", y.Tenants(), y.Nodes(), y.Connections())
	}
}

func TestInvalidFilter(t *testing.T) {
	x := NewIndex[int]()
	for _, f := range []payloads.Filter{
		{},
		{Event: evRes, Resources: []payloads.ResourceFilter{{Name: ""}}},
		{Event: evRes, Resources: []payloads.ResourceFilter{{Name: "a", Actions: []payloads.Action{0}}}},
		{Event: evRes, Resources: []payloads.ResourceFilter{{Name: "a", Actions: []payloads.Action{payloads.MaxAction + 1}}}},
	} {
		if _, err := x.Subscribe("t1", 1, &Set{}, f, 0); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Subscribe(%v) = %v, want ErrInvalidFilter", f, err)
		}
	}
	if x.Tenants() != 0 {
		t.Errorf("Tenants %d", x.Tenants())
	}
}

func TestRemoveAllFreesNodes(t *testing.T) {
	x := NewIndex[int]()
	type conn struct {
		tenant string
		id     int
		set    Set
	}
	var conns []*conn
	for i := range 300 {
		c := &conn{tenant: fmt.Sprintf("tenant-%d", i%7), id: i}
		conns = append(conns, c)
		mustSub(t, x, c.tenant, c.id, &c.set, res(evRes, fmt.Sprintf("r%d", i%50), payloads.Action(1+i%3)))
		mustSub(t, x, c.tenant, c.id, &c.set, res(evRes, fmt.Sprintf("r%d", i%13)))
		if i%5 == 0 {
			mustSub(t, x, c.tenant, c.id, &c.set, whole(evRes))
		}
		mustSub(t, x, c.tenant, c.id, &c.set, whole(fmt.Sprintf("event-%d", i)))
	}
	if x.Tenants() != 7 || x.Connections() != 300 || x.Nodes() == 0 {
		t.Fatalf("Tenants %d Connections %d Nodes %d", x.Tenants(), x.Connections(), x.Nodes())
	}
	// Remove two thirds, then check the rest still match exactly.
	for _, c := range conns {
		if c.id%3 != 0 {
			x.RemoveAll(c.tenant, c.id, &c.set)
			if c.set.Len() != 0 || c.set.e != nil {
				t.Fatalf("RemoveAll left the set with %d entries", c.set.Len())
			}
		}
	}
	for _, c := range conns {
		got := matchSorted(t, x, c.tenant, fmt.Sprintf("event-%d", c.id), payloads.Routing{})
		if want := c.id%3 == 0; (len(got) == 1 && got[0] == c.id) != want || len(got) > 1 {
			t.Fatalf("conn %d: own event matched %v", c.id, got)
		}
	}
	for _, c := range conns {
		x.RemoveAll(c.tenant, c.id, &c.set)
		x.RemoveAll(c.tenant, c.id, &c.set) // idempotent
	}
	if x.Tenants() != 0 || x.Connections() != 0 || x.Entries() != 0 || x.Nodes() != 0 {
		t.Fatalf("after RemoveAll: Tenants %d Connections %d Entries %d Nodes %d",
			x.Tenants(), x.Connections(), x.Entries(), x.Nodes())
	}
	for i := range x.shards {
		if len(x.shards[i].m) != 0 {
			t.Fatalf("shard %d still holds %d tenants", i, len(x.shards[i].m))
		}
	}
}

// TestManyNodesComeAndGo exercises renumbering of the slot table as most of
// a tenant's nodes are freed.
func TestManyNodesComeAndGo(t *testing.T) {
	x := NewIndex[int]()
	sets := make([]Set, 1000)
	for round := range 3 {
		for i := range sets {
			mustSub(t, x, "t1", i, &sets[i], res(evRes, fmt.Sprintf("r%d", i), created, deleted))
			mustSub(t, x, "t1", i, &sets[i], res(evRes, fmt.Sprintf("r%d", i+1)))
		}
		for i := range sets {
			if i%10 != round {
				x.RemoveAll("t1", i, &sets[i])
			}
		}
		for i := range sets {
			got := matchSorted(t, x, "t1", evRes, rt(fmt.Sprintf("r%d", i), created))
			var want []int
			if (i-1)%10 == round && i > 0 {
				want = append(want, i-1)
			}
			if i%10 == round {
				want = append(want, i)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, r%d: got %v, want %v", round, i, got, want)
			}
		}
		t1 := x.lookup("t1")
		if live, slots := x.Nodes(), len(t1.lists); slots > 2*live+64 {
			t.Errorf("round %d: %d slots for %d nodes", round, slots, live)
		}
		for i := range sets {
			x.RemoveAll("t1", i, &sets[i])
		}
	}
	if x.Nodes() != 0 || x.Tenants() != 0 {
		t.Fatalf("Nodes %d Tenants %d", x.Nodes(), x.Tenants())
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	x := NewIndex[int]()
	sets := make([]Set, 3000)
	for i := range sets {
		var f payloads.Filter
		switch i % 3 {
		case 0:
			f = whole(evRes)
		case 1:
			f = res(evRes, "tickets")
		default:
			f = res(evRes, "tickets", created)
		}
		mustSub(t, x, "t1", i, &sets[i], f)
	}
	dst := make([]int, 0, len(sets))
	for _, tc := range []struct {
		name, tenant, event string
		r                   payloads.Routing
		want                int
	}{
		{"all three lists", "t1", evRes, rt("tickets", created), 3000},
		{"whole event only", "t1", evRes, rt("orders", created), 1000},
		{"unknown event", "t1", evLic, payloads.Routing{}, 0},
		{"unknown tenant", "t2", evRes, rt("tickets", created), 0},
	} {
		var n int
		allocs := testing.AllocsPerRun(100, func() {
			n = len(x.Match(tc.tenant, tc.event, tc.r, dst[:0]))
		})
		if allocs != 0 || n != tc.want {
			t.Errorf("%s: %v allocs per Match, %d matches (want 0 allocs, %d)", tc.name, allocs, n, tc.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	x := NewIndex[int]()
	tenants := []string{"A", "B", "C"}
	// Steady connections 0..2 (one per tenant) hold tickets/created throughout;
	// every Match of tickets/created in their tenant must include them.
	steady := make([]Set, len(tenants))
	for i, tn := range tenants {
		mustSub(t, x, tn, i, &steady[i], res(evRes, "tickets", created))
	}
	tenantOf := func(c int) string { return tenants[c%len(tenants)] }
	filters := []payloads.Filter{
		whole(evRes), whole(evLic), res(evRes, "tickets"), res(evRes, "tickets", created, updated),
		res(evRes, "orders", deleted), res(evRes, "stock"),
	}
	var wg sync.WaitGroup
	const writers, perWriter = 8, 4
	for w := range writers {
		wg.Go(func() {
			sets := make([]Set, perWriter)
			for it := range 5000 {
				k := it % perWriter
				c := 100 + w*perWriter + k // c%3 picks the tenant
				f := filters[(it*7+w)%len(filters)]
				switch it % 5 {
				case 0, 1:
					if _, err := x.Subscribe(tenantOf(c), c, &sets[k], f, 4); err != nil && !errors.Is(err, ErrTooManySubscriptions) {
						t.Error(err)
						return
					}
				case 2, 3:
					x.Unsubscribe(tenantOf(c), c, &sets[k], f)
				default:
					x.RemoveAll(tenantOf(c), c, &sets[k])
				}
			}
			for k := range sets {
				c := 100 + w*perWriter + k
				x.RemoveAll(tenantOf(c), c, &sets[k])
			}
		})
	}
	var matchers sync.WaitGroup
	for m := range 4 {
		matchers.Go(func() {
			dst := make([]int, 0, 64)
			for range 5000 {
				ti := m % len(tenants)
				dst = x.Match(tenants[ti], evRes, rt("tickets", created), dst[:0])
				seen := map[int]bool{}
				for _, c := range dst {
					if seen[c] || tenantOf(c) != tenants[ti] {
						t.Errorf("Match in %s returned %v", tenants[ti], dst)
						return
					}
					seen[c] = true
				}
				if !seen[ti] {
					t.Errorf("Match in %s missed the steady connection: %v", tenants[ti], dst)
					return
				}
				_ = x.Tenants() + x.Connections() + x.Entries()
			}
		})
	}
	wg.Wait()
	matchers.Wait()
	if x.Connections() != 3 || x.Entries() != 3 || x.Tenants() != 3 {
		t.Errorf("after the writers: Connections %d Entries %d Tenants %d", x.Connections(), x.Entries(), x.Tenants())
	}
	for i, tn := range tenants {
		x.RemoveAll(tn, i, &steady[i])
	}
	if x.Nodes() != 0 || x.Tenants() != 0 {
		t.Errorf("Nodes %d Tenants %d", x.Nodes(), x.Tenants())
	}
}

func mustSub(t testing.TB, x *Index[int], tenant string, c int, s *Set, f payloads.Filter) {
	t.Helper()
	if _, err := x.Subscribe(tenant, c, s, f, 0); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryPerConnection keeps the index compact: 100k connections with a
// whole-event and a resource+action entry each (see
// BenchmarkMemoryPerConnection for the number).
func TestMemoryPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100k-connection index")
	}
	const budget = 128 // bytes per connection: 2 Set entries, 2 list slots, shared nodes
	if got := memoryPerConnection(t, 100_000); got > budget {
		t.Errorf("%.1f bytes per connection, budget %d", got, budget)
	}
	if size := unsafe.Sizeof(Set{}); size > 24 {
		t.Errorf("an idle connection's Set is %d bytes", size)
	}
}
