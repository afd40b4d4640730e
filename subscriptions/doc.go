// Package subscriptions keeps what each connection has subscribed to and finds,
// for a notification, the connections it must be delivered to.
//
// # Entries
//
// A subscription filter (payloads.Filter) stands for entries of three kinds, all
// of one event:
//
//   - whole event: the filter names no resources;
//   - whole resource: a resource named without actions;
//   - resource+action: one entry for each action listed for a resource.
//
// Subscribe adds the filter's entries to those the connection already has.
// Unsubscribe with the same filter removes exactly those entries and nothing
// else: after Subscribe(E) and Subscribe(E tickets [created]), Unsubscribe(E)
// leaves (E, tickets, created) in place, and Unsubscribe(E tickets) removes the
// whole-resource entry of tickets but no action entry of it. Both are
// idempotent: subscribing to an entry the connection has, or unsubscribing from
// one it does not have, changes nothing. A filter that names the same entry
// twice counts it once.
//
// # Matching
//
// A notification (tenant, event, payloads.Routing{Resource, Action}) matches a
// connection of that tenant that has the whole event, or the whole resource
// Routing.Resource of the event, or the entry (Routing.Resource,
// Routing.Action). Notifications of events without resources have a zero
// Routing and match whole-event entries only. A connection appears once in
// the result however many of its entries match, so it is sent a notification
// at most once. Tenants are separate: a connection subscribed in one tenant is
// never returned for another.
//
// # Scopes
//
// A filter may be limited to a site and/or a user (payloads.Filter.Site and
// User). Its entries then live in that scope and match only notifications
// routed there: a site scope matches notifications whose Routing.Site is that
// site, a user scope those whose Routing.Users include that user, a site+user
// scope those with both. Tenant-wide entries (no scope) match every
// notification of the tenant, routed or not, except private ones
// (Routing.Private): those match only the user scopes (and site+user scopes)
// of their users. A connection with entries in several scopes that one
// notification reaches still gets it once.
//
// # Structure and cost
//
// The index is a tree tenant → (event, scope) → {whole-event entry, resource →
// {whole-resource entry, one entry per action}}, and each entry node holds the
// list of its connections in a dense slice. A notification consults at most
// three of those lists, found by map lookups, so Match never looks at a
// connection that does not match.
//
// An entry of a connection that is covered by a broader entry of the same
// connection (its resource entries while it has the whole event, its action
// entries of a resource while it has that whole resource) is kept in its Set but
// not listed in the index; Subscribe and Unsubscribe move entries in and out of
// the lists as coverage changes. Hence no connection is in more than one of the
// lists a notification consults, and Match is a few lookups and copies: no
// deduplication, no allocation when the destination has room.
//
// Subscribe and Unsubscribe cost O(entries of the connection + entries of the
// filter), RemoveAll O(entries of the connection); none of them depends on the
// number of other connections. Empty nodes (entries, resources, events,
// tenants) are freed as soon as nothing refers to them.
//
// # Concurrency
//
// An Index is safe for concurrent use. Each tenant has its own RWMutex and the
// tenant map is split into independently locked shards, so Match in one tenant
// runs concurrently with other Matches and is never held up by writes to
// another tenant. A connection's Set is only read and written under its
// tenant's lock, by the Index.
package subscriptions
