package payloads

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestParseNotifications(t *testing.T) {
	cat := DefaultCatalogue()
	tests := []struct {
		name  string
		body  string
		field string // "" with wantErr false: valid
		err   string
	}{
		{"licence", `{"e":"portos.licence.activated","p":{"k":"v"}}`, "", ""},
		{"resource", `{"e":"portos.resources.changed","p":{"n":"tickets","a":2,"i":{"i":"1","n":"tickets","v":3},"r":[{}]}}`, "", ""},
		{"batch", `[{"e":"portos.licence.activated"},{"e":"portos.licence.activated"}]`, "", ""},
		{"nulls", `{"e":"portos.licence.activated","s":null,"r":null,"ca":null,"ea":null,"p":null}`, "", ""},
		{"empty", ``, "", "empty body"},
		{"garbage", `{{`, "", "invalid JSON"},
		{"trailing", `{"e":"portos.licence.activated"} {}`, "", "trailing"},
		{"missing e", `{}`, "e", "required"},
		{"e number", `{"e":1}`, "e", "string"},
		{"unknown event", `{"e":"x"}`, "e", "unknown event"},
		{"unknown key", `{"e":"portos.licence.activated","x":1}`, "x", "unknown field"},
		{"r number", `{"e":"portos.licence.activated","r":1}`, "r", "string"},
		{"ca format", `{"e":"portos.licence.activated","ca":"1/2/2024"}`, "ca", "RFC 3339"},
		{"ea number", `{"e":"portos.licence.activated","ea":5}`, "ea", "RFC 3339"},
		{"sender shape", `{"e":"portos.licence.activated","s":[]}`, "s", "object"},
		{"sender user type", `{"e":"portos.licence.activated","s":{"u":{"d":1}}}`, "s.u.d", "string"},
		{"sender unknown key", `{"e":"portos.licence.activated","s":{"x":1}}`, "s.x", "unknown field"},
		{"resource without p", `{"e":"portos.resources.changed"}`, "p", "required"},
		{"resource p not object", `{"e":"portos.resources.changed","p":[1]}`, "p", "object"},
		{"resource no name", `{"e":"portos.resources.changed","p":{"a":1}}`, "p.n", "empty"},
		{"resource bad action", `{"e":"portos.resources.changed","p":{"n":"t","a":4}}`, "p.a", "must be 1"},
		{"resource action string", `{"e":"portos.resources.changed","p":{"n":"t","a":"created"}}`, "p.a", "integer"},
		{"resource version string", `{"e":"portos.resources.changed","p":{"n":"t","a":1,"i":{"v":"7"}}}`, "p.i.v", "integer"},
		{"batch element", `[{"e":"portos.licence.activated"},{"e":"nope"}]`, "[1].e", "unknown event"},
		{"batch nested", `[{"e":"portos.resources.changed","p":{"n":"t","a":9}}]`, "[0].p.a", "must be 1"},
		{"empty batch", `[]`, "", "empty array"},
		{"route", `{"e":"portos.licence.activated","route":{"site":"s1","users":["u1","u2"]}}`, "", ""},
		{"route unknown key", `{"e":"portos.licence.activated","route":{"sites":["s1"]}}`, "route.sites", "unknown field"},
		{"route site type", `{"e":"portos.licence.activated","route":{"site":1}}`, "route.site", "string"},
		{"route empty user", `{"e":"portos.licence.activated","route":{"users":["u1",""]}}`, "route.users[1]", "empty"},
		{"batch too long", `[` + strings.Repeat(`{"e":"portos.licence.activated"},`, 3) + `{"e":"portos.licence.activated"}]`, "", "exceeds the limit of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := cat.ParseNotifications([]byte(tt.body), 3, now)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if len(ns) == 0 {
					t.Fatal("no notifications")
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.err) {
				t.Fatalf("got field %q msg %q; want field %q msg containing %q", fe.Field, fe.Msg, tt.field, tt.err)
			}
		})
	}
}

func TestParsedNotification(t *testing.T) {
	body := `{"e":"portos.resources.changed","r":"ref","ca":"2024-07-01T14:51:52.558+02:00","ea":"2024-07-02T00:00:00Z",
	  "p":{ "n": "tickets", "a": 3, "r": [ {"x": 1.50} ] }}`
	ns, err := DefaultCatalogue().ParseNotifications([]byte(body), 0, now)
	if err != nil {
		t.Fatal(err)
	}
	n := ns[0]
	if !reflect.DeepEqual(n.Routing, Routing{Resource: "tickets", Action: ActionDeleted}) {
		t.Errorf("routing %+v", n.Routing)
	}
	if !n.CreatedAt.Equal(time.Date(2024, 7, 1, 12, 51, 52, 558e6, time.UTC)) || n.CreatedAt.Location() != time.UTC {
		t.Errorf("created at %v, want the instant in UTC", n.CreatedAt)
	}
	if string(n.Payload) != `{"n":"tickets","a":3,"r":[{"x":1.50}]}` {
		t.Errorf("payload %s: want it compacted, numbers untouched", n.Payload)
	}
	ns2, err := DefaultCatalogue().ParseNotifications([]byte(`{"e":"portos.licence.activated","route":{"site":"s1","users":["u1"]}}`), 0, now)
	if err != nil || !reflect.DeepEqual(ns2[0].Routing, Routing{Site: "s1", Users: []string{"u1"}}) {
		t.Errorf("route: %v %+v", err, ns2)
	}
	if b, _ := json.Marshal(&ns2[0]); strings.Contains(string(b), "route") || strings.Contains(string(b), "u1") {
		t.Errorf("routing data leaks into the client notification: %s", b)
	}
	if !n.Expired(time.Date(2024, 7, 2, 0, 0, 0, 0, time.UTC)) || n.Expired(time.Date(2024, 7, 1, 23, 0, 0, 0, time.UTC)) {
		t.Error("expiry is at ea, inclusive")
	}
	out, err := json.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"e":"portos.resources.changed","s":null,"r":"ref","ca":"2024-07-01T12:51:52.558Z","ea":"2024-07-02T00:00:00Z","p":{"n":"tickets","a":3,"r":[{"x":1.50}]}}`
	if string(out) != want {
		t.Errorf("JSON\n%s\nwant\n%s", out, want)
	}
	ns, _ = DefaultCatalogue().ParseNotifications([]byte(`{"e":"portos.licence.activated"}`), 0, now)
	if !ns[0].CreatedAt.Equal(now) {
		t.Errorf("missing ca: got %v, want the publish time", ns[0].CreatedAt)
	}
}

func TestFilter(t *testing.T) {
	cat := DefaultCatalogue()
	tests := []struct {
		name  string
		req   SubscriptionRequest
		want  Filter
		field string
	}{
		{"whole event", SubscriptionRequest{Event: EventResourcesChanged}, Filter{Event: EventResourcesChanged}, ""},
		{"resource", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{Name: "t"}}},
			Filter{Event: EventResourcesChanged, Resources: []ResourceFilter{{Name: "t"}}}, ""},
		{"actions", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{Name: "t", Actions: []string{"deleted", "created"}}}},
			Filter{Event: EventResourcesChanged, Resources: []ResourceFilter{{Name: "t", Actions: []Action{ActionDeleted, ActionCreated}}}}, ""},
		{"no event", SubscriptionRequest{}, Filter{}, "e"},
		{"unknown event", SubscriptionRequest{Event: "x"}, Filter{}, "e"},
		{"r on plain event", SubscriptionRequest{Event: EventLicenceActivated, Resources: []SubscriptionRequestResource{{Name: "t"}}}, Filter{}, "r"},
		{"empty r", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{}}, Filter{}, "r"},
		{"empty name", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{}}}, Filter{}, "r[0].n"},
		{"space in name", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{Name: "a b"}}}, Filter{}, "r[0].n"},
		{"empty a", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{Name: "t", Actions: []string{}}}}, Filter{}, "r[0].a"},
		{"unknown action", SubscriptionRequest{Event: EventResourcesChanged, Resources: []SubscriptionRequestResource{{Name: "t", Actions: []string{"created", "Created"}}}}, Filter{}, "r[0].a[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := cat.Filter(&tt.req)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.String() != tt.want.String() {
					t.Fatalf("got %v, want %v", f, tt.want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %v, want an error on %q", err, tt.field)
			}
		})
	}
}

func TestCatalogue(t *testing.T) {
	if _, err := NewCatalogue([]string{"a"}, []string{"b"}); err == nil {
		t.Error("a resource event outside the catalogue must be refused")
	}
	if _, err := NewCatalogue(nil, nil); err == nil {
		t.Error("an empty catalogue must be refused")
	}
	if _, err := NewCatalogue([]string{"has space"}, nil); err == nil {
		t.Error("an event name with a space must be refused")
	}
	c, err := NewCatalogue([]string{"x.y", "z"}, []string{"z"})
	if err != nil || !c.Known("x.y") || c.IsResourceEvent("x.y") || !c.IsResourceEvent("z") || c.Events() != "x.y, z" {
		t.Fatalf("custom catalogue: %v %+v", err, c)
	}
}

func TestAction(t *testing.T) {
	for a := ActionCreated; a <= MaxAction; a++ {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("round trip of %v: %v %v", a, got, err)
		}
	}
	if Action(0).Valid() || Action(4).Valid() {
		t.Error("0 and 4 are not actions")
	}
}

// FuzzParseNotifications: any body yields notifications or a FieldError,
// never a panic, and what is accepted re-validates identically.
func FuzzParseNotifications(f *testing.F) {
	for _, s := range []string{
		`{"e":"portos.licence.activated","p":{"k":"v"}}`,
		`[{"e":"portos.resources.changed","p":{"n":"t","a":1,"i":{"i":"1","n":"t","v":1},"r":[{}]}}]`,
		`{"e":"portos.resources.changed","s":{"c":"x","u":{"u":"1","d":null}},"ca":"2024-07-01T12:51:52.558Z","ea":null,"p":{"n":"t","a":3}}`,
		`{"e":`, `[]`, `[1]`, `null`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	cat := DefaultCatalogue()
	f.Fuzz(func(t *testing.T, body []byte) {
		ns, err := cat.ParseNotifications(body, 100, now)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		for i := range ns {
			out, err := json.Marshal(&ns[i])
			if err != nil {
				t.Fatalf("accepted notification does not encode: %v", err)
			}
			again, err := cat.ParseNotifications(out, 0, now)
			if err != nil {
				t.Fatalf("re-parse of %s: %v", out, err)
			}
			if again[0].Routing.Resource != ns[i].Routing.Resource || again[0].Routing.Action != ns[i].Routing.Action || again[0].Event != ns[i].Event {
				t.Fatalf("re-parse changed routing: %+v vs %+v", again[0], ns[i])
			}
		}
	})
}

// FuzzFilter: any subscription request JSON yields a filter or an error.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`{"e":"portos.resources.changed","r":[{"n":"devices","a":["created","updated","deleted"]}]}`,
		`{"e":"portos.licence.activated"}`, `{"e":5}`, `{"r":[{}]}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	cat := DefaultCatalogue()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req SubscriptionRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		flt, err := cat.Filter(&req)
		if err != nil {
			return
		}
		if !cat.Known(flt.Event) || len(flt.Resources) != len(req.Resources) {
			t.Fatalf("accepted filter %+v from %s", flt, body)
		}
		for _, r := range flt.Resources {
			for _, a := range r.Actions {
				if !a.Valid() {
					t.Fatalf("invalid action accepted: %v", a)
				}
			}
		}
	})
}
