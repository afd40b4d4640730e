package server_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

var (
	resources = payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged}
	licences  = payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated}
)

func TestPortosFlow(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skipNegotiation=%v", skip), func(t *testing.T) {
			env := startHub(t)
			c := env.dial("t1", testclient.Options{SkipNegotiation: skip})
			env.subscribe(c, payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged,
				Resources: []payloads.SubscriptionRequestResource{{Name: "devices", Actions: []string{"created", "updated", "deleted"}}}})
			sent := resourceChanged("devices", payloads.ActionCreated, "573f4511088c772684a738f8")
			sent["ca"] = "2024-07-01T12:51:52.558Z"
			sent["ea"] = nil
			env.publish("t1", sent)
			got := next(t, c)
			// The hub writes every key, with the values the publisher sent.
			want := map[string]any{}
			if err := jsonRoundTrip(sent, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("received\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, want))
			}
		})
	}
}

func TestFilters(t *testing.T) {
	tickets := func(actions ...string) payloads.SubscriptionRequest {
		return payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged,
			Resources: []payloads.SubscriptionRequestResource{{Name: "tickets", Actions: actions}}}
	}
	type pub struct {
		res    string
		action payloads.Action
	}
	tests := []struct {
		name string
		sub  payloads.SubscriptionRequest
		pubs []pub
		want []string // refs that arrive, in order
	}{
		{"whole event", resources, []pub{{"tickets", 1}, {"devices", 2}, {"tickets", 3}}, []string{"0", "1", "2"}},
		{"one resource, all actions", tickets(), []pub{{"tickets", 1}, {"devices", 1}, {"tickets", 3}}, []string{"0", "2"}},
		{"one resource, one action", tickets("created"), []pub{{"tickets", 2}, {"devices", 1}, {"tickets", 1}}, []string{"2"}},
		{"two actions", tickets("created", "deleted"), []pub{{"tickets", 1}, {"tickets", 2}, {"tickets", 3}}, []string{"0", "2"}},
	}
	env := startHub(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.dial("t1", testclient.Options{})
			env.subscribe(c, tt.sub)
			env.subscribe(c, licences) // the sentinel proves nothing else is still on its way
			var batch []any
			for i, p := range tt.pubs {
				batch = append(batch, resourceChanged(p.res, p.action, fmt.Sprint(i)))
			}
			batch = append(batch, licence("sentinel"))
			env.publish("t1", batch)
			var got []string
			for {
				m := next(t, c)
				if ref(m) == "sentinel" {
					break
				}
				got = append(got, ref(m))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("received %v, want %v", got, tt.want)
			}
			c.Close()
		})
	}
}

func TestUnsubscribeTakesExactlyThatAway(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	ticketsCreated := payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged,
		Resources: []payloads.SubscriptionRequestResource{{Name: "tickets", Actions: []string{"created"}}}}
	env.subscribe(c, resources)
	env.subscribe(c, resources) // idempotent
	env.subscribe(c, ticketsCreated)
	env.subscribe(c, licences)
	ctx := context.Background()
	if err := c.Unsubscribe(ctx, resources); err != nil {
		t.Fatal(err)
	}
	env.publish("t1", []any{
		resourceChanged("devices", payloads.ActionCreated, "devices"), // whole event gone
		resourceChanged("tickets", payloads.ActionCreated, "tickets"), // still subscribed
		licence("sentinel"),
	})
	if got := ref(next(t, c)); got != "tickets" {
		t.Fatalf("first notification %q, want tickets", got)
	}
	if got := ref(next(t, c)); got != "sentinel" {
		t.Fatalf("second notification %q, want sentinel", got)
	}
	if err := c.Unsubscribe(ctx, ticketsCreated); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, ticketsCreated); err != nil { // idempotent
		t.Fatal(err)
	}
	env.publish("t1", []any{resourceChanged("tickets", payloads.ActionCreated, "tickets"), licence("sentinel2")})
	if got := ref(next(t, c)); got != "sentinel2" {
		t.Fatalf("after unsubscribing everything got %q, want sentinel2", got)
	}
}

func TestTenantIsolation(t *testing.T) {
	env := startHub(t)
	a := env.dial("tenant-a", testclient.Options{})
	b := env.dial("tenant-b", testclient.Options{})
	env.subscribe(a, licences)
	env.subscribe(b, licences)
	env.publish("tenant-a", licence("for-a"))
	env.publish("tenant-b", licence("for-b"))
	if got := ref(next(t, a)); got != "for-a" {
		t.Fatalf("tenant a received %q", got)
	}
	if got := ref(next(t, b)); got != "for-b" {
		t.Fatalf("tenant b received %q, want only its own", got)
	}
	// A publisher token bound to a tenant cannot publish to another.
	bound := &testclient.Publisher{BaseURL: env.srv.InternalURL(),
		Token: env.token(server.TokenRequest{Subject: "svc", Tenant: "tenant-a", Scopes: []string{"notifications.publish"}, TTL: time.Hour})}
	res, err := bound.Publish(context.Background(), "tenant-b", licence("x"))
	if err != nil || res.Status != 403 {
		t.Fatalf("cross-tenant publish: %v status %d, want 403", err, res.Status)
	}
}

func TestOrderAndExpiry(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	env.subscribe(c, licences)
	var batch []any
	for i := range 200 {
		n := licence(fmt.Sprint(i))
		if i%10 == 5 {
			n["ea"] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
		}
		batch = append(batch, n)
	}
	res, err := env.pub.Publish(context.Background(), "t1", batch)
	if err != nil || res.Status != 202 || res.Accepted != 200 {
		t.Fatalf("publish: %v %+v", err, res)
	}
	for i := range 200 {
		if i%10 == 5 {
			continue // expired: never delivered
		}
		if got := ref(next(t, c)); got != fmt.Sprint(i) {
			t.Fatalf("notification %d arrived as %q", i, got)
		}
	}
	env.publish("t1", licence("last"))
	if got := ref(next(t, c)); got != "last" {
		t.Fatalf("got %q after the batch, want last", got)
	}
}

func TestBadInvocationsKeepTheConnection(t *testing.T) {
	env := startHub(t)
	c := env.dial("t1", testclient.Options{})
	ctx := context.Background()
	tests := []struct {
		target string
		args   []any
		want   string
	}{
		{"Nope", []any{resources}, "does not exist"},
		{"Subscribe", nil, "takes 1 argument"},
		{"Subscribe", []any{resources, resources}, "takes 1 argument"},
		{"Subscribe", []any{"x"}, "must be an object"},
		{"Subscribe", []any{nil}, "must be an object"},
		{"Subscribe", []any{map[string]any{"e": 5}}, "must be an object"},
		{"Subscribe", []any{map[string]any{}}, "e: required"},
		{"Subscribe", []any{map[string]any{"e": "nope"}}, "unknown event"},
		{"Subscribe", []any{map[string]any{"e": payloads.EventResourcesChanged, "r": []any{map[string]any{"n": "t", "a": []string{"eaten"}}}}}, "unknown action"},
		{"Subscribe", []any{map[string]any{"e": payloads.EventLicenceActivated, "r": []any{map[string]any{"n": "t"}}}}, "has no resources"},
		{"Unsubscribe", []any{map[string]any{"e": "nope"}}, "unknown event"},
	}
	for _, tt := range tests {
		err := c.Invoke(ctx, tt.target, tt.args...)
		var ie *testclient.InvokeError
		if !errors.As(err, &ie) || !strings.Contains(ie.Message, tt.want) {
			t.Errorf("%s%v: error %v, want one containing %q", tt.target, tt.args, err, tt.want)
		}
	}
	env.subscribe(c, licences) // method names are case-insensitive too
	if err := c.Invoke(ctx, "unsubscribe", licences); err != nil {
		t.Fatalf("lower-case unsubscribe: %v", err)
	}
	env.subscribe(c, licences)
	env.publish("t1", licence("still-up"))
	if got := ref(next(t, c)); got != "still-up" {
		t.Fatalf("got %q", got)
	}
}

func jsonRoundTrip(in, out any) error {
	b, err := jsonMarshal(in)
	if err != nil {
		return err
	}
	return jsonUnmarshal(b, out)
}
