package notify

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
)

func wireSample() []payloads.Notification {
	str := func(s string) *string { return &s }
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("", -(3*3600+30*60)))
	return []payloads.Notification{
		{
			Event:     payloads.EventResourcesChanged,
			Sender:    &payloads.Sender{ConnectionID: str("c"), User: &payloads.UserIdentity{User: str("u"), Device: str(""), Feature: str("f")}},
			Reference: str("r"),
			CreatedAt: time.Date(2024, 7, 1, 12, 51, 52, 558000000, time.UTC),
			ExpiresAt: &exp,
			Payload:   payloads.RawJSON(`{"n":"devices","a":3,"r":[1,"two",{"x":null}]}`),
			Routing:   payloads.Routing{Resource: "devices", Action: payloads.ActionDeleted, Site: "site-1", Users: []string{"a", "b"}, Private: true},
		},
		{Event: payloads.EventLicenceActivated, CreatedAt: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)},
		{Event: "x", Sender: &payloads.Sender{User: &payloads.UserIdentity{Device: str("d")}}, CreatedAt: time.Unix(0, 1).UTC()},
		{Event: "y", Sender: &payloads.Sender{}, CreatedAt: time.Unix(1<<40, 999999999).In(time.FixedZone("", 14*3600))},
	}
}

// sameNotifications compares notifications, times by instant and offset
// (how clients see them) rather than by *time.Location.
func sameNotifications(t *testing.T, got, want []payloads.Notification) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d notifications, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !sameTime(g.CreatedAt, w.CreatedAt) || (g.ExpiresAt == nil) != (w.ExpiresAt == nil) ||
			g.ExpiresAt != nil && !sameTime(*g.ExpiresAt, *w.ExpiresAt) {
			t.Fatalf("notification %d: times %v %v, want %v %v", i, g.CreatedAt, g.ExpiresAt, w.CreatedAt, w.ExpiresAt)
		}
		g.CreatedAt, g.ExpiresAt = w.CreatedAt, w.ExpiresAt
		if !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Fatalf("notification %d:\n got %s %+v\nwant %s %+v", i, gj, g.Routing, wj, w.Routing)
		}
	}
}

func sameTime(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo
}

func TestWireRoundTrip(t *testing.T) {
	ns := wireSample()
	msg := string(encodeMessage(wireHeader{node: 0xdeadbeef, seq: 42}, ns))
	h, err := decodeHeader(msg)
	if err != nil || h != (wireHeader{node: 0xdeadbeef, seq: 42}) {
		t.Fatalf("header %+v, %v", h, err)
	}
	got, err := decodeNotifications(msg)
	if err != nil {
		t.Fatal(err)
	}
	sameNotifications(t, got, ns)
	// Clients see exactly what they would have seen on the publishing node.
	for i := range ns {
		gj, _ := json.Marshal(&got[i])
		wj, _ := json.Marshal(&ns[i])
		if string(gj) != string(wj) {
			t.Fatalf("notification %d as JSON:\n got %s\nwant %s", i, gj, wj)
		}
	}

	// The notifications above set every field. A new field must be set
	// there too, and carried by the wire format.
	if n := reflect.TypeFor[payloads.Notification]().NumField(); n != 7 {
		t.Fatalf("payloads.Notification has %d fields, this test knows 7: carry the new one in wire.go", n)
	}
	if n := reflect.TypeFor[payloads.Routing]().NumField(); n != 5 {
		t.Fatalf("payloads.Routing has %d fields, this test knows 5: carry the new one in wire.go", n)
	}
}

func TestWireRejects(t *testing.T) {
	good := string(encodeMessage(wireHeader{node: 1, seq: 1}, wireSample()[:1]))
	body := func(b ...byte) string { return good[:wireHeaderLen] + string(b) }
	for _, tc := range []struct{ name, msg, want string }{
		{"empty", "", "empty"},
		{"future version", "\x02" + good[1:], "unsupported backplane wire version 2"},
		{"short header", good[:9], "shorter than its header"},
		{"no notifications", body(0), "0 notifications"},
		{"count beyond bytes", body(0xc8, 0x01, 0), "200 notifications in 1 bytes"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"trailing bytes", good + "x", "1 bytes after the last notification"},
		{"no event", body(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "no event"},
		{"bad flags", body(1, 1, 'e', flagUser, 0, 0, 0, 0, 0, 0, 0, 0, 0), "inconsistent flags"},
		{"bad routing flags", body(1, 1, 'e', 0, 0, 0, 0, 0, 0, 0, 2, 0, 0), "unknown routing flags"},
		{"bad nanoseconds", body(1, 1, 'e', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0), "invalid time"},
	} {
		_, err := decodeHeader(tc.msg)
		if err == nil {
			_, err = decodeNotifications(tc.msg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// FuzzWireDecode feeds arbitrary messages to the decoder, as a broken or
// hostile peer on the Redis channel could: it must return an error, never
// panic, and what it accepts must survive encoding again.
func FuzzWireDecode(f *testing.F) {
	f.Add(encodeMessage(wireHeader{node: 1, seq: 2}, wireSample()))
	f.Add(encodeMessage(wireHeader{}, []payloads.Notification{{Event: "e"}}))
	f.Add([]byte{})
	f.Add([]byte{wireVersion})
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, err := decodeHeader(string(msg)); err != nil {
			return
		}
		ns, err := decodeNotifications(string(msg))
		if err != nil {
			return
		}
		again, err := decodeNotifications(string(encodeMessage(wireHeader{}, ns)))
		if err != nil {
			t.Fatalf("re-encoded notifications do not decode: %v", err)
		}
		sameNotifications(t, again, ns)
	})
}

// The wire cost per notification for a batch of 100 typical ones, next to
// the same batch as JSON (the notifications' own keys plus the routing):
//
//	go test -run '^$' -bench Wire -benchmem ./notify
func BenchmarkWire(b *testing.B) {
	str := func(s string) *string { return &s }
	ns := make([]payloads.Notification, 100)
	for i := range ns {
		ns[i] = payloads.Notification{
			Event:     payloads.EventResourcesChanged,
			Sender:    &payloads.Sender{ConnectionID: str("conn-1"), User: &payloads.UserIdentity{User: str("SYSTEM"), Device: str("SYSTEM")}},
			Reference: str("573f4511088c772684a738f8"),
			CreatedAt: time.Date(2024, 7, 1, 12, 51, 52, 558000000, time.UTC),
			Payload:   payloads.RawJSON(`{"u":{"u":"999","d":"BackOffice","f":null},"n":"devices","a":1,"i":{"i":"573f4511088c772684a738f8","n":"devices","v":7},"r":[{"id":"573f4511088c772684a738f8","total":12.5}]}`),
			Routing:   payloads.Routing{Resource: "devices", Action: payloads.ActionCreated},
		}
	}
	perNote := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ns)), "ns/notification")
	}
	msg := string(encodeMessage(wireHeader{}, ns))
	b.Run("binary/encode", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			encodeMessage(wireHeader{}, ns)
		}
		perNote(b)
	})
	b.Run("binary/decode", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if _, err := decodeNotifications(msg); err != nil {
				b.Fatal(err)
			}
		}
		perNote(b)
	})
	type jsonNote struct {
		*payloads.Notification
		Routing payloads.Routing `json:"rt"`
	}
	asJSON := func() []byte {
		w := make([]jsonNote, len(ns))
		for i := range ns {
			w[i] = jsonNote{&ns[i], ns[i].Routing}
		}
		out, _ := json.Marshal(w)
		return out
	}
	js := asJSON()
	b.Run("json/encode", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			asJSON()
		}
		perNote(b)
	})
	b.Run("json/decode", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var w []jsonNote
			if err := json.Unmarshal(js, &w); err != nil {
				b.Fatal(err)
			}
		}
		perNote(b)
	})
}
