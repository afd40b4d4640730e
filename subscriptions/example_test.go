package subscriptions_test

import (
	"fmt"

	"notifyhub/payloads"
	"notifyhub/subscriptions"
)

// A connection embeds its Set; the hub keeps one Index for all tenants.
type conn struct {
	// ... the connection's transport, queue, identity ...
	subs subscriptions.Set
}

func Example() {
	x := subscriptions.NewIndex[*conn]()
	pos := &conn{}

	tickets := payloads.Filter{Event: payloads.EventResourcesChanged, Resources: []payloads.ResourceFilter{
		{Name: "tickets", Actions: []payloads.Action{payloads.ActionCreated}},
	}}
	everything := payloads.Filter{Event: payloads.EventResourcesChanged}
	x.Subscribe("tenant-1", pos, &pos.subs, everything, 100)
	x.Subscribe("tenant-1", pos, &pos.subs, tickets, 100)

	match := func(resource string, a payloads.Action) int {
		return len(x.Match("tenant-1", payloads.EventResourcesChanged, payloads.Routing{Resource: resource, Action: a}, nil))
	}
	fmt.Println("tickets created:", match("tickets", payloads.ActionCreated), "(once, though two entries match)")
	fmt.Println("orders deleted:", match("orders", payloads.ActionDeleted))

	// Unsubscribing the whole event takes exactly that away.
	x.Unsubscribe("tenant-1", pos, &pos.subs, everything)
	fmt.Println("after Unsubscribe(whole event):", pos.subs.Len(), "entry;",
		"tickets created:", match("tickets", payloads.ActionCreated), "orders deleted:", match("orders", payloads.ActionDeleted))

	// On disconnect.
	x.RemoveAll("tenant-1", pos, &pos.subs)
	fmt.Println("tenants:", x.Tenants(), "connections:", x.Connections())
	// Output:
	// tickets created: 1 (once, though two entries match)
	// orders deleted: 1
	// after Unsubscribe(whole event): 1 entry; tickets created: 1 orders deleted: 0
	// tenants: 0 connections: 0
}
