package subscriptions

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"notifyhub/payloads"
)

// ErrTooManySubscriptions is returned (wrapped, with the numbers) by Subscribe
// when the connection would hold more entries than its limit.
var ErrTooManySubscriptions = errors.New("too many subscriptions")

// ErrInvalidFilter is returned (wrapped, saying what is wrong) by Subscribe for
// a filter without an event, with an unnamed resource or with an unknown
// action. Filters made by payloads.Catalogue.Filter never are.
var ErrInvalidFilter = errors.New("invalid subscription filter")

// Set is one connection's subscriptions. The zero value is empty and ready;
// with no subscriptions it holds no memory beyond itself.
//
// A Set belongs to one connection of one tenant of one Index. It is only
// changed by that Index, under the tenant's lock, and the Index keeps a pointer
// to it until the connection's last entry is removed, so it must not be copied
// or reused for another connection while it has entries. Pass the same *Set
// (and the same connection handle) to every call for the connection.
type Set struct {
	_ noCopy
	e []entry
}

// noCopy makes go vet report copies of a Set.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Len returns the number of entries the connection has (see the package doc),
// for per-connection limits. It must not run concurrently with an Index call
// for the same connection; call it where the connection's Subscribe and
// Unsubscribe calls are made.
func (s *Set) Len() int { return len(s.e) }

// entry is one subscription of a connection.
type entry struct {
	n   *node
	pos int32 // the connection's position in n's list; -1 while covered by a broader entry
}

// node is an entry of the index: whole event (res == nil), whole resource
// (action == 0) or resource+action. Its connection list lives in the tenant's
// lists[id], so that this tree (and Set) need no type parameter.
type node struct {
	back   []backref // back[i] says where the connection at lists[id][i] keeps this entry
	ev     *eventNode
	res    *resourceNode
	mark   uint64 // scratch for one operation under the write lock
	refs   int32  // connections that have the entry, listed or covered
	id     int32
	action payloads.Action
}

// backref locates a connection's entry: set.e[i].
type backref struct {
	set *Set
	i   int32
}

// scope limits entries to the notifications of one site and/or one user;
// the zero scope is tenant-wide.
type scope struct{ site, user string }

// eventKey names an event node: an event in a scope.
type eventKey struct {
	event string
	scope scope
}

type eventNode struct {
	key       eventKey
	tree      *tree
	whole     *node
	resources map[string]*resourceNode
}

type resourceNode struct {
	name    string
	ev      *eventNode
	whole   *node
	actions [payloads.MaxAction]*node // index Action-1
	mark    uint64
}

func (r *resourceNode) empty() bool {
	if r.whole != nil {
		return false
	}
	for _, n := range r.actions {
		if n != nil {
			return false
		}
	}
	return true
}

// tree is the type-independent part of a tenant.
type tree struct {
	name    string
	events  map[eventKey]*eventNode
	stamp   uint64
	free    []int32 // unused slots of lists
	scratch []*node
	dead    bool // removed from the index; look the tenant up again
}

type tenant[C comparable] struct {
	mu    sync.RWMutex
	tree  tree
	lists [][]C // connection list of the node with that id
}

const shardCount = 64 // a power of two

type shard[C comparable] struct {
	mu sync.RWMutex
	m  map[string]*tenant[C]
	_  [64 - (unsafe.Sizeof(sync.RWMutex{})+unsafe.Sizeof(map[string]int(nil)))%64]byte // own cache line
}

// Index maps notifications to the connections whose subscriptions match them.
// C is the connection handle (typically a pointer); it is stored in the index
// and returned by Match, and must tell apart the connections of a tenant.
// Create one with NewIndex. All methods are safe for
// concurrent use.
type Index[C comparable] struct {
	seed    maphash.Seed
	shards  [shardCount]shard[C]
	tenants atomic.Int64
	conns   atomic.Int64
	entries atomic.Int64
	nodes   atomic.Int64
}

// NewIndex returns an empty index.
func NewIndex[C comparable]() *Index[C] {
	x := &Index[C]{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = make(map[string]*tenant[C])
	}
	return x
}

// Tenants returns the number of tenants with at least one entry (momentarily
// also counting one whose first Subscribe is under way).
func (x *Index[C]) Tenants() int { return int(x.tenants.Load()) }

// Connections returns the number of connections with at least one entry.
func (x *Index[C]) Connections() int { return int(x.conns.Load()) }

// Entries returns the number of entries of all connections (the sum of their
// Set.Len).
func (x *Index[C]) Entries() int { return int(x.entries.Load()) }

// Nodes returns the number of nodes in the index below the tenants: events,
// resources and entry nodes. It is zero when nothing is subscribed; it shows
// that nodes are freed as subscriptions go.
func (x *Index[C]) Nodes() int { return int(x.nodes.Load()) }

func (x *Index[C]) shard(tenant string) *shard[C] {
	return &x.shards[maphash.String(x.seed, tenant)&(shardCount-1)]
}

func (x *Index[C]) lookup(tenant string) *tenant[C] {
	sh := x.shard(tenant)
	sh.mu.RLock()
	t := sh.m[tenant]
	sh.mu.RUnlock()
	return t
}

// lockTenant returns the tenant write-locked, creating it if create is set;
// nil if it does not exist and create is not set.
func (x *Index[C]) lockTenant(name string, create bool) *tenant[C] {
	for {
		t := x.lookup(name)
		if t == nil {
			if !create {
				return nil
			}
			sh := x.shard(name)
			sh.mu.Lock()
			if t = sh.m[name]; t == nil {
				t = &tenant[C]{tree: tree{name: name, events: make(map[eventKey]*eventNode)}}
				sh.m[name] = t
				x.tenants.Add(1)
			}
			sh.mu.Unlock()
		}
		t.mu.Lock()
		if !t.tree.dead {
			return t
		}
		t.mu.Unlock()
	}
}

// unlockTenant releases t, removing it from the index first if it is empty.
// Lock order is tenant, then shard; nothing holds a shard lock while waiting
// for a tenant.
func (x *Index[C]) unlockTenant(t *tenant[C]) {
	if len(t.tree.events) == 0 {
		sh := x.shard(t.tree.name)
		sh.mu.Lock()
		delete(sh.m, t.tree.name)
		sh.mu.Unlock()
		t.tree.dead = true
		x.tenants.Add(-1)
	}
	if cap(t.tree.scratch) > 1024 {
		t.tree.scratch = nil
	}
	t.mu.Unlock()
}

// Match appends to dst the connections of tenant that the notification (event,
// r) matches, each once, and returns the extended slice. It does not allocate
// when dst has room for them, unless one connection has entries in several
// scopes that the notification reaches (then a set removes the repeats).
func (x *Index[C]) Match(tenant, event string, r payloads.Routing, dst []C) []C {
	t := x.lookup(tenant)
	if t == nil {
		return dst
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	start := len(dst)
	if !r.Private { // a private notification reaches its users' entries only
		dst = t.matchScope(eventKey{event: event}, r, dst)
	}
	if r.Site == "" && len(r.Users) == 0 {
		return dst
	}
	// The notification also reaches entries limited to its site, to each of
	// its users, and to each user at its site.
	lists := 0
	if len(dst) > start {
		lists++
	}
	add := func(sc scope) {
		n := len(dst)
		dst = t.matchScope(eventKey{event, sc}, r, dst)
		if len(dst) > n {
			lists++
		}
	}
	if r.Site != "" && !r.Private {
		add(scope{site: r.Site})
	}
	for _, u := range r.Users {
		add(scope{user: u})
		if r.Site != "" {
			add(scope{site: r.Site, user: u})
		}
	}
	if lists > 1 {
		dst = dedupe(dst, start)
	}
	return dst
}

// matchScope appends the connections of one event node; no connection is in
// more than one of its lists (covered entries are not listed).
func (t *tenant[C]) matchScope(key eventKey, r payloads.Routing, dst []C) []C {
	ev := t.tree.events[key]
	if ev == nil {
		return dst
	}
	if n := ev.whole; n != nil {
		dst = append(dst, t.lists[n.id]...)
	}
	if r.Resource != "" && ev.resources != nil {
		if rn := ev.resources[r.Resource]; rn != nil {
			if n := rn.whole; n != nil {
				dst = append(dst, t.lists[n.id]...)
			}
			if r.Action.Valid() {
				if n := rn.actions[r.Action-1]; n != nil {
					dst = append(dst, t.lists[n.id]...)
				}
			}
		}
	}
	return dst
}

// dedupe removes repeated connections from dst[start:], keeping first places.
func dedupe[C comparable](dst []C, start int) []C {
	seen := make(map[C]struct{}, len(dst)-start)
	out := dst[:start]
	for _, c := range dst[start:] {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			out = append(out, c)
		}
	}
	clear(dst[len(out):])
	return out
}

// keyOf is the event node a filter's entries live under.
func keyOf(f payloads.Filter) eventKey {
	return eventKey{f.Event, scope{site: f.Site, user: f.User}}
}

// Subscribe adds the entries of f to connection c of tenant, whose Set is set,
// and returns how many it did not have yet. If c would then hold more than
// limit entries (limit <= 0: no limit), nothing changes and the error wraps
// ErrTooManySubscriptions; a Subscribe that adds nothing never fails that way.
// An invalid filter gives an error wrapping ErrInvalidFilter.
func (x *Index[C]) Subscribe(tenant string, c C, set *Set, f payloads.Filter, limit int) (added int, err error) {
	if err := validate(f); err != nil {
		return 0, err
	}
	t := x.lockTenant(tenant, true)
	defer x.unlockTenant(t)
	t.owns(set)

	stamp := t.tree.next()
	for _, e := range set.e {
		e.n.mark = stamp
	}
	// Find or make the filter's nodes; keep those c does not have, once each.
	fresh := t.tree.scratch[:0]
	ev := t.event(x, keyOf(f))
	if len(f.Resources) == 0 {
		fresh = collect(fresh, t.wholeEvent(x, ev), stamp)
	}
	for _, rf := range f.Resources {
		rn := t.resource(x, ev, rf.Name)
		if len(rf.Actions) == 0 {
			fresh = collect(fresh, t.wholeResource(x, rn), stamp)
		}
		for _, a := range rf.Actions {
			fresh = collect(fresh, t.action(x, rn, a), stamp)
		}
	}
	t.tree.scratch = fresh[:0]
	if len(fresh) == 0 {
		return 0, nil
	}
	if have := len(set.e); limit > 0 && have+len(fresh) > limit {
		for _, n := range fresh {
			if n.refs == 0 {
				t.freeNode(x, n)
			}
		}
		clear(fresh)
		return 0, fmt.Errorf("%w: the connection has %d, this request adds %d, the limit is %d",
			ErrTooManySubscriptions, have, len(fresh), limit)
	}
	if len(set.e) == 0 {
		x.conns.Add(1)
	}
	set.e = slices.Grow(set.e, len(fresh))
	for _, n := range fresh {
		n.refs++
		set.e = append(set.e, entry{n: n, pos: -1})
	}
	clear(fresh)
	x.entries.Add(int64(len(fresh)))
	t.reconcile(ev, c, set)
	return len(fresh), nil
}

func collect(fresh []*node, n *node, stamp uint64) []*node {
	if n.mark == stamp {
		return fresh
	}
	n.mark = stamp
	return append(fresh, n)
}

// Unsubscribe removes the entries of f from connection c of tenant, whose Set
// is set, and returns how many it had. Entries of f it does not have are
// ignored.
func (x *Index[C]) Unsubscribe(tenant string, c C, set *Set, f payloads.Filter) (removed int) {
	t := x.lockTenant(tenant, false)
	if t == nil {
		return 0
	}
	defer x.unlockTenant(t)
	t.owns(set)
	ev := t.tree.events[keyOf(f)]
	if ev == nil || len(set.e) == 0 {
		return 0
	}
	stamp := t.tree.next()
	if len(f.Resources) == 0 {
		if n := ev.whole; n != nil {
			n.mark = stamp
		}
	}
	for _, rf := range f.Resources {
		rn := ev.resources[rf.Name]
		if rn == nil {
			continue
		}
		if len(rf.Actions) == 0 && rn.whole != nil {
			rn.whole.mark = stamp
		}
		for _, a := range rf.Actions {
			if a.Valid() && rn.actions[a-1] != nil {
				rn.actions[a-1].mark = stamp
			}
		}
	}
	// Drop the marked entries, keeping the others in order.
	j := 0
	for i := range set.e {
		e := set.e[i]
		if e.n.mark == stamp {
			if e.pos >= 0 {
				t.deactivate(set, i)
			}
			t.release(x, e.n)
			continue
		}
		if j != i {
			set.e[j] = e
			if e.pos >= 0 {
				e.n.back[e.pos].i = int32(j)
			}
		}
		j++
	}
	removed = len(set.e) - j
	if removed == 0 {
		return 0
	}
	clear(set.e[j:])
	set.e = set.e[:j]
	x.entries.Add(int64(-removed))
	if j == 0 {
		x.conns.Add(-1)
	}
	switch {
	case j == 0:
		set.e = nil // an idle connection holds nothing
	case cap(set.e) > 8 && j <= cap(set.e)/4:
		set.e = append(make([]entry, 0, 2*j), set.e...) // backrefs hold indexes, which stay
	}
	t.reconcile(ev, c, set)
	return removed
}

// RemoveAll removes every entry of connection c of tenant, whose Set is set;
// call it when the connection goes away. Afterwards the index holds no
// reference to c or set.
func (x *Index[C]) RemoveAll(tenant string, c C, set *Set) {
	t := x.lockTenant(tenant, false)
	if t == nil {
		return
	}
	defer x.unlockTenant(t)
	t.owns(set)
	if len(set.e) == 0 {
		return
	}
	for i := range set.e {
		n := set.e[i].n
		if set.e[i].pos >= 0 {
			t.deactivate(set, i)
		}
		t.release(x, n)
	}
	x.entries.Add(int64(-len(set.e)))
	x.conns.Add(-1)
	set.e = nil
}

// owns panics if set has entries of another tenant or index: that would be a
// bug in the caller, and going on would corrupt both.
func (t *tenant[C]) owns(set *Set) {
	if len(set.e) > 0 && set.e[0].n.ev.tree != &t.tree {
		panic("subscriptions: Set used with another tenant or Index than the one it has entries in")
	}
}

func (t *tree) next() uint64 {
	t.stamp++
	return t.stamp
}

// reconcile lists in the index exactly those entries of c in ev that no
// broader entry of c covers, and delists the others.
func (t *tenant[C]) reconcile(ev *eventNode, c C, set *Set) {
	stamp := t.tree.next()
	whole := false
	for _, e := range set.e {
		switch n := e.n; {
		case n.ev != ev:
		case n.res == nil:
			whole = true
		case n.action == 0:
			n.res.mark = stamp
		}
	}
	for i := range set.e {
		n := set.e[i].n
		if n.ev != ev {
			continue
		}
		want := n.res == nil || !whole && (n.action == 0 || n.res.mark != stamp)
		switch listed := set.e[i].pos >= 0; {
		case want && !listed:
			t.activate(c, set, i)
		case !want && listed:
			t.deactivate(set, i)
		}
	}
}

// activate appends c to the list of set.e[i]'s node.
func (t *tenant[C]) activate(c C, set *Set, i int) {
	n := set.e[i].n
	l := t.lists[n.id]
	set.e[i].pos = int32(len(l))
	t.lists[n.id] = append(l, c)
	n.back = append(n.back, backref{set: set, i: int32(i)})
}

// deactivate takes the connection of set out of the list of set.e[i]'s node,
// moving the last one of the list into its place.
func (t *tenant[C]) deactivate(set *Set, i int) {
	n := set.e[i].n
	p := set.e[i].pos
	l := t.lists[n.id]
	last := len(l) - 1
	if int(p) != last {
		l[p] = l[last]
		b := n.back[last]
		n.back[p] = b
		b.set.e[b.i].pos = p
	}
	var zero C
	l[last] = zero
	n.back[last] = backref{}
	l, n.back = l[:last], n.back[:last]
	if c := cap(l); c >= 64 && last <= c/4 {
		l = append(make([]C, 0, 2*last), l...)
	}
	if c := cap(n.back); c >= 64 && last <= c/4 {
		n.back = append(make([]backref, 0, 2*last), n.back...)
	}
	t.lists[n.id] = l
	set.e[i].pos = -1
}

func (t *tenant[C]) event(x *Index[C], key eventKey) *eventNode {
	ev := t.tree.events[key]
	if ev == nil {
		ev = &eventNode{key: key, tree: &t.tree}
		t.tree.events[key] = ev
		x.nodes.Add(1)
	}
	return ev
}

func (t *tenant[C]) resource(x *Index[C], ev *eventNode, name string) *resourceNode {
	rn := ev.resources[name]
	if rn == nil {
		if ev.resources == nil {
			ev.resources = make(map[string]*resourceNode)
		}
		rn = &resourceNode{name: name, ev: ev}
		ev.resources[name] = rn
		x.nodes.Add(1)
	}
	return rn
}

func (t *tenant[C]) wholeEvent(x *Index[C], ev *eventNode) *node {
	if ev.whole == nil {
		ev.whole = t.newNode(x, ev, nil, 0)
	}
	return ev.whole
}

func (t *tenant[C]) wholeResource(x *Index[C], rn *resourceNode) *node {
	if rn.whole == nil {
		rn.whole = t.newNode(x, rn.ev, rn, 0)
	}
	return rn.whole
}

func (t *tenant[C]) action(x *Index[C], rn *resourceNode, a payloads.Action) *node {
	n := rn.actions[a-1]
	if n == nil {
		n = t.newNode(x, rn.ev, rn, a)
		rn.actions[a-1] = n
	}
	return n
}

func (t *tenant[C]) newNode(x *Index[C], ev *eventNode, rn *resourceNode, a payloads.Action) *node {
	n := &node{ev: ev, res: rn, action: a}
	if k := len(t.tree.free); k > 0 {
		n.id = t.tree.free[k-1]
		t.tree.free = t.tree.free[:k-1]
	} else {
		n.id = int32(len(t.lists))
		t.lists = append(t.lists, nil)
	}
	x.nodes.Add(1)
	return n
}

// release drops one reference to n, freeing it when it was the last.
func (t *tenant[C]) release(x *Index[C], n *node) {
	if n.refs--; n.refs == 0 {
		t.freeNode(x, n)
	}
}

// freeNode unlinks an unreferenced node and the resource and event nodes it
// leaves empty.
func (t *tenant[C]) freeNode(x *Index[C], n *node) {
	t.lists[n.id] = nil
	t.tree.free = append(t.tree.free, n.id)
	freed := int64(1)
	ev, rn := n.ev, n.res
	switch {
	case rn == nil:
		ev.whole = nil
	case n.action == 0:
		rn.whole = nil
	default:
		rn.actions[n.action-1] = nil
	}
	if rn != nil && rn.empty() {
		delete(ev.resources, rn.name)
		freed++
	}
	if ev.whole == nil && len(ev.resources) == 0 {
		delete(t.tree.events, ev.key)
		freed++
	}
	x.nodes.Add(-freed)
	if k := len(t.tree.free); k >= 64 && k > len(t.lists)/2 {
		t.compactSlots()
	}
}

// compactSlots renumbers the live nodes so that lists holds no free slots.
// It runs once more than half the slots are free, so its cost is paid for by
// the frees since the last time.
func (t *tenant[C]) compactSlots() {
	lists := make([][]C, 0, len(t.lists)-len(t.tree.free))
	move := func(n *node) {
		if n != nil {
			lists = append(lists, t.lists[n.id])
			n.id = int32(len(lists) - 1)
		}
	}
	for _, ev := range t.tree.events {
		move(ev.whole)
		for _, rn := range ev.resources {
			move(rn.whole)
			for _, n := range rn.actions {
				move(n)
			}
		}
	}
	t.lists, t.tree.free = lists, nil
}

func validate(f payloads.Filter) error {
	if f.Event == "" {
		return fmt.Errorf("%w: no event", ErrInvalidFilter)
	}
	for i, r := range f.Resources {
		if r.Name == "" {
			return fmt.Errorf("%w: resource %d of %s has no name", ErrInvalidFilter, i, f.Event)
		}
		for _, a := range r.Actions {
			if !a.Valid() {
				return fmt.Errorf("%w: %v of resource %s", ErrInvalidFilter, a, r.Name)
			}
		}
	}
	return nil
}
