package notify

import (
	"reflect"
	"testing"
	"time"

	"notifyhub/payloads"
)

func TestWireRoundTrip(t *testing.T) {
	str := func(s string) *string { return &s }
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	ns := []payloads.Notification{
		{
			Event:     payloads.EventResourcesChanged,
			Sender:    &payloads.Sender{ConnectionID: str("c"), User: &payloads.UserIdentity{User: str("u"), Device: str("d"), Feature: str("f")}},
			Reference: str("r"),
			CreatedAt: time.Date(2024, 7, 1, 12, 51, 52, 558000000, time.UTC),
			ExpiresAt: &exp,
			Payload:   payloads.RawJSON(`{"n":"devices","a":3,"r":[1,"two",{"x":null}]}`),
			Routing:   payloads.Routing{Resource: "devices", Action: payloads.ActionDeleted, Site: "site-1", Users: []string{"a", "b"}},
		},
		{Event: payloads.EventLicenceActivated, CreatedAt: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)},
	}
	msg, err := encodeMessage(wireHeader{node: 0xdeadbeef, seq: 42}, ns)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeHeader(msg)
	if err != nil || h != (wireHeader{node: 0xdeadbeef, seq: 42}) {
		t.Fatalf("header %+v, %v", h, err)
	}
	got, err := decodeNotifications(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ns) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ns)
	}
	t.Logf("%d bytes for %d notifications: %s", len(msg), len(ns), msg[wireHeaderLen:])

	// The notifications above set every field. A new field must be set
	// there too, and carried by the wire format if it is not JSON.
	if n := reflect.TypeFor[payloads.Notification]().NumField(); n != 7 {
		t.Fatalf("payloads.Notification has %d fields, this test knows 7: check that the wire format carries the new one", n)
	}
}

// FuzzWireDecode feeds arbitrary messages to the decoder, as a broken or
// hostile peer on the Redis channel could: it must return an error, never
// panic, and what it accepts must encode again.
func FuzzWireDecode(f *testing.F) {
	good, _ := encodeMessage(wireHeader{node: 1, seq: 2}, []payloads.Notification{{Event: "e", Routing: payloads.Routing{Resource: "r", Action: 1}}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{wireVersion})
	f.Add(append(good[:wireHeaderLen:wireHeaderLen], `[{"e":"x","rt":{"u":["a"]}},null]`...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, err := decodeHeader(msg); err != nil {
			return
		}
		ns, err := decodeNotifications(msg)
		if err != nil {
			return
		}
		if _, err := encodeMessage(wireHeader{}, ns); err != nil {
			t.Fatalf("decoded notifications do not encode: %v", err)
		}
	})
}
