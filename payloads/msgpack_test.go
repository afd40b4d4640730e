package payloads

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestRawJSONEncodeMsgpack(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"empty is nil", "", "c0"},
		{"null", "null", "c0"},
		{"true", "true", "c3"},
		{"false", "false", "c2"},
		{"zero", "0", "00"},
		{"positive fixint", "127", "7f"},
		{"uint8", "128", "cc 80"},
		{"uint16", "300", "cd 01 2c"},
		{"uint32", "65536", "ce 00 01 00 00"},
		{"uint64", "4294967296", "cf 00 00 00 01 00 00 00 00"},
		{"max int64", "9223372036854775807", "cf 7f ff ff ff ff ff ff ff"},
		{"max uint64", "18446744073709551615", "cf ff ff ff ff ff ff ff ff"},
		{"beyond uint64 is a float", "18446744073709551616", "cb 43 f0 00 00 00 00 00 00"},
		{"negative fixint", "-1", "ff"},
		{"-32", "-32", "e0"},
		{"int8", "-33", "d0 df"},
		{"int16", "-129", "d1 ff 7f"},
		{"int32", "-32769", "d2 ff ff 7f ff"},
		{"min int64", "-9223372036854775808", "d3 80 00 00 00 00 00 00 00"},
		{"below int64 is a float", "-9223372036854775809", "cb c3 e0 00 00 00 00 00 00"},
		{"negative zero is an integer literal", "-0", "00"},
		{"fraction", "1.5", "cb 3f f8 00 00 00 00 00 00"},
		{"1.0 stays a float", "1.0", "cb 3f f0 00 00 00 00 00 00"},
		{"exponent stays a float", "1e3", "cb 40 8f 40 00 00 00 00 00"},
		{"negative exponent", "-2.5E-1", "cb bf d0 00 00 00 00 00 00"},
		{"overflowing float is infinity", "1e400", "cb 7f f0 00 00 00 00 00 00"},
		{"string", `"a"`, "a1 61"},
		{"empty string", `""`, "a0"},
		{"escapes", `"\u00e9\n\"\\\/"`, "a6 c3 a9 0a 22 5c 2f"},
		{"surrogate pair", `"\ud83d\ude00"`, "a4 f0 9f 98 80"},
		{"raw UTF-8", `"é😀"`, "a6 c3 a9 f0 9f 98 80"},
		{"invalid UTF-8 is replaced as JSON clients see it", "\"\xff\"", "a3 ef bf bd"},
		{"str8", `"` + strings.Repeat("x", 32) + `"`, "d9 20" + strings.Repeat(" 78", 32)},
		{"empty object", "{}", "80"},
		{"empty array", "[]", "90"},
		{"key order is kept", `{"b":1,"a":[1,{"c":null}],"d":{}}`, "83 a1 62 01 a1 61 92 01 81 a1 63 c0 a1 64 80"},
		{"nested arrays", `[[],[[]],[1,[2]]]`, "93 90 91 90 92 01 91 02"},
		{"whitespace", " {\n\t\"a\" : [ 1 , true ] ,\r\n \"b\" : \"\" } ", "82 a1 61 92 01 c3 a1 62 a0"},
		{"16 elements use array16", "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]", "dc 00 10" + strings.Repeat(" 00", 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := msgpack.Marshal(RawJSON(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
		})
	}
}

func TestRawJSONEncodeMsgpackInvalid(t *testing.T) {
	for _, in := range []string{"{", `{"a":}`, "nul", `"a`, "[1,]", "1 2", "\x00"} {
		if b, err := msgpack.Marshal(RawJSON(in)); err == nil {
			t.Errorf("%q encoded as % x, want an error", in, b)
		}
	}
}

// jsonCorpus are JSON documents whose MessagePack form must decode to the
// values encoding/json gives for them.
var jsonCorpus = []string{
	`null`, `true`, `0`, `-1`, `1.5`, `1e3`, `-0.0`, `18446744073709551615`, `-9223372036854775808`,
	`123456789012345678901234567890`, `"héllo\u0000\ud83d\ude00"`, `[]`, `{}`,
	`{"u":{"u":"alice","d":null,"f":"pos"},"n":"orders","a":2,"i":{"i":"42","n":"Order 42","v":7},"r":[{"id":42,"total":12.5,"lines":[[1,2],[3]],"ok":true}]}`,
	`[{"a":{"b":{"c":{"d":[[[[]]]]}}}}]`,
	`{"dup":1,"dup":2}`,
}

// jsonEquivalent decodes a MessagePack value into the Go values
// encoding/json would give for the same JSON: float64 numbers, []any,
// map[string]any.
func jsonEquivalent(tb testing.TB, b []byte) any {
	tb.Helper()
	var v any
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.UseLooseInterfaceDecoding(true)
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode % x: %v", b, err)
	}
	var conv func(any) any
	conv = func(v any) any {
		switch v := v.(type) {
		case int64:
			return float64(v)
		case uint64:
			return float64(v)
		case []any:
			for i := range v {
				v[i] = conv(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = conv(v[k])
			}
		}
		return v
	}
	return conv(v)
}

func checkSameAsJSON(t *testing.T, doc []byte) {
	t.Helper()
	var want any
	if err := json.Unmarshal(doc, &want); err != nil {
		return // not valid JSON for encoding/json (e.g. out-of-range number): nothing to compare
	}
	b, err := msgpack.Marshal(RawJSON(doc))
	if err != nil {
		t.Fatalf("encode %q: %v", doc, err)
	}
	if got := jsonEquivalent(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: MessagePack decodes to %#v, JSON to %#v", doc, got, want)
	}
	// And back: the JSON read from MessagePack means the same.
	var back RawJSON
	if err := msgpack.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode %q back to JSON: %v", doc, err)
	}
	if len(back) == 0 {
		back = RawJSON("null") // nil reads as an absent payload, which JSON writes as null
	}
	var again any
	if err := json.Unmarshal(back, &again); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("%q came back as %s (%v)", doc, back, err)
	}
}

func TestRawJSONMsgpackMatchesJSON(t *testing.T) {
	for _, doc := range jsonCorpus {
		checkSameAsJSON(t, []byte(doc))
	}
}

// FuzzRawJSONMsgpack: any JSON that encoding/json accepts converts to
// MessagePack that decodes to the same values, and back.
func FuzzRawJSONMsgpack(f *testing.F) {
	for _, doc := range jsonCorpus {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			if _, err := msgpack.Marshal(RawJSON(doc)); err == nil && len(bytes.TrimSpace(doc)) > 0 {
				t.Fatalf("invalid JSON %q encoded without error", doc)
			}
			return
		}
		checkSameAsJSON(t, doc)
	})
}

func TestRawJSONDecodeMsgpack(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "nil is absent", in: "c0", want: ""},
		{name: "object", in: "82 a1 62 01 a1 61 92 cb 3f f8 00 00 00 00 00 00 c0", want: `{"b":1,"a":[1.5,null]}`},
		{name: "integer widths", in: "94 cf ff ff ff ff ff ff ff ff d3 80 00 00 00 00 00 00 00 ff cc 80", want: `[18446744073709551615,-9223372036854775808,-1,128]`},
		{name: "float32", in: "ca 3f 8c cc cd", want: `1.1`},
		{name: "strings are escaped", in: "a5 22 3c 0a 5c 7f", want: `"\"\u003c\n\\` + "\x7f" + `"`},
		{name: "integer keys become strings", in: "82 01 c3 ff c2", want: `{"1":true,"-1":false}`},
		{name: "binary becomes base64", in: "c4 02 01 02", want: `"AQI="`},
		{name: "timestamps become RFC 3339 in UTC", in: "d7 ff 77 35 94 00 00 00 00 01", want: `"1970-01-01T00:00:01.5Z"`},
		{name: "boolean key", in: "81 c3 01", err: "map key must be a string or an integer, got a boolean"},
		{name: "NaN", in: "cb 7f f8 00 00 00 00 00 01", err: "no JSON form"},
		{name: "other extension", in: "d4 05 00", err: "timestamp extension"},
		{name: "truncated", in: "92 01", err: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r RawJSON
			err := msgpack.Unmarshal(mustHex(t, tt.in), &r)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil || string(r) != tt.want {
				t.Fatalf("got %s (%v), want %s", r, err, tt.want)
			}
		})
	}
	deep := append(bytes.Repeat([]byte{0x91}, maxJSONDepth+1), 0xc0)
	var r RawJSON
	if err := msgpack.Unmarshal(deep, &r); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep nesting: %v", err)
	}
}

func strp(s string) *string { return &s }

func TestNotificationMsgpack(t *testing.T) {
	n := Notification{
		Event:     "x",
		Sender:    &Sender{ConnectionID: strp("c"), User: &UserIdentity{User: strp("u"), Feature: strp("f")}},
		CreatedAt: time.Unix(1, 0),
		Payload:   RawJSON(`{"a":1}`),
		Routing:   Routing{Resource: "never", Action: ActionCreated},
	}
	got, err := msgpack.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the compact keys in declaration order, nil pointers as nil,
	// ca as a timestamp, the payload as a map, and no Routing.
	want := mustHex(t, "86"+
		"a1 65 a1 78"+
		"a1 73 82 a1 63 a1 63 a1 75 83 a1 75 a1 75 a1 64 c0 a1 66 a1 66"+
		"a1 72 c0"+
		"a2 63 61 d6 ff 00 00 00 01"+
		"a2 65 61 c0"+
		"a1 70 81 a1 61 01")
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}

	var back Notification
	if err := msgpack.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !back.CreatedAt.Equal(n.CreatedAt) || back.Event != n.Event || *back.Sender.User.Feature != "f" ||
		back.Sender.User.Device != nil || back.Reference != nil || back.ExpiresAt != nil || string(back.Payload) != `{"a":1}` {
		t.Fatalf("round trip gave %+v", back)
	}
}

// TestNotificationTimesMsgpack: ca and ea use the three timestamp forms
// exactly as the JS client writes the same Date, so it decodes them the same
// way; the zone of a time.Time does not matter.
func TestNotificationTimesMsgpack(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"4 bytes: whole seconds (JS Date(1000))", time.UnixMilli(1000), "d6 ff 00 00 00 01"},
		{"8 bytes: with nanoseconds (JS Date(1500))", time.UnixMilli(1500), "d7 ff 77 35 94 00 00 00 00 01"},
		{"12 bytes: before 1970 (JS Date(-1000))", time.UnixMilli(-1000), "c7 0c ff 00 00 00 00 ff ff ff ff ff ff ff ff"},
		{"4 bytes: a zone is only a view of the instant",
			time.Date(2024, 5, 1, 12, 20, 30, 0, time.FixedZone("CEST", 2*3600)), "d6 ff 66 32 17 6e"},
		{"8 bytes: after 2106", time.Unix(1<<32, 0), "d7 ff 00 00 00 01 00 00 00 00"},
		{"12 bytes: beyond 34-bit seconds", time.Unix(1<<34, 5), "c7 0c ff 00 00 00 05 00 00 00 04 00 00 00 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ea := tt.t
			got, err := msgpack.Marshal(&Notification{Event: "x", CreatedAt: tt.t, ExpiresAt: &ea})
			if err != nil {
				t.Fatal(err)
			}
			ts := mustHex(t, tt.want)
			// ...a2 63 61 <ca> a2 65 61 <ea>...
			wantCA := append([]byte("\xa2ca"), ts...)
			wantEA := append([]byte("\xa2ea"), ts...)
			if !bytes.Contains(got, wantCA) || !bytes.Contains(got, wantEA) {
				t.Fatalf("got % x, want ca and ea as % x", got, ts)
			}
			var back Notification
			if err := msgpack.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !back.CreatedAt.Equal(tt.t) || !back.ExpiresAt.Equal(tt.t) {
				t.Fatalf("read back %v / %v, want %v", back.CreatedAt, back.ExpiresAt, tt.t)
			}
		})
	}
	// A JS Date has milliseconds; the nanoseconds below them travel anyway
	// and the JS decoder truncates them.
	b, err := msgpack.Marshal(time.Unix(1, 1_500_999))
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "d7 ff 00 5b 9d 1c 00 00 00 01"); !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
}

func TestSubscriptionRequestDecodeMsgpack(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type m = map[string]any
	tests := []struct {
		name  string
		in    []byte
		want  SubscriptionRequest
		field string // FieldError.Field when an error is expected
		msg   string // part of its message
	}{
		{name: "event only", in: enc(m{"e": "portos.licence.activated"}), want: SubscriptionRequest{Event: "portos.licence.activated"}},
		{name: "resources and actions", in: enc(m{"e": "ev", "r": []any{m{"n": "orders", "a": []string{"created", "deleted"}}, m{"n": "tables"}}}),
			want: SubscriptionRequest{Event: "ev", Resources: []SubscriptionRequestResource{{Name: "orders", Actions: []string{"created", "deleted"}}, {Name: "tables"}}}},
		{name: "nil r is no filter", in: enc(m{"e": "ev", "r": nil}), want: SubscriptionRequest{Event: "ev"}},
		{name: "empty r stays empty, not nil", in: enc(m{"e": "ev", "r": []any{}}), want: SubscriptionRequest{Event: "ev", Resources: []SubscriptionRequestResource{}}},
		{name: "empty a stays empty", in: enc(m{"e": "ev", "r": []any{m{"n": "o", "a": []any{}}}}),
			want: SubscriptionRequest{Event: "ev", Resources: []SubscriptionRequestResource{{Name: "o", Actions: []string{}}}}},
		{name: "unknown keys are skipped", in: enc(m{"x": m{"deep": []any{1, 2}}, "e": "ev", "r": []any{m{"n": "o", "zz": 1}}}),
			want: SubscriptionRequest{Event: "ev", Resources: []SubscriptionRequestResource{{Name: "o"}}}},
		{name: "nil request", in: []byte{0xc0}, want: SubscriptionRequest{}},
		{name: "wide strings", in: mustHex(t, "81 d9 01 65 da 00 02 65 76"), want: SubscriptionRequest{Event: "ev"}},

		{name: "e is an integer", in: enc(m{"e": 5}), field: "e", msg: "must be a string, got an integer"},
		{name: "e is binary", in: enc(m{"e": []byte("ev")}), field: "e", msg: "must be a string, got binary data"},
		{name: "r is an object", in: enc(m{"e": "ev", "r": m{"n": "o"}}), field: "r", msg: "must be an array, got an object"},
		{name: "r is a string", in: enc(m{"e": "ev", "r": "orders"}), field: "r", msg: "must be an array, got a string"},
		{name: "resource is a string", in: enc(m{"e": "ev", "r": []any{"orders"}}), field: "r[0]", msg: "must be an object, got a string"},
		{name: "resource name is a number", in: enc(m{"e": "ev", "r": []any{m{"n": "o"}, m{"n": 1.5}}}), field: "r[1].n", msg: "must be a string, got a number"},
		{name: "actions is a string", in: enc(m{"e": "ev", "r": []any{m{"n": "o", "a": "created"}}}), field: "r[0].a", msg: "must be an array, got a string"},
		{name: "action is a number", in: enc(m{"e": "ev", "r": []any{m{"n": "o", "a": []any{"created", 1}}}}), field: "r[0].a[1]", msg: "must be a string, got an integer"},
		{name: "request is an array", in: enc([]any{"ev"}), field: "", msg: "must be an object, got an array"},
		{name: "integer key", in: mustHex(t, "81 01 a2 65 76"), field: "", msg: "object keys must be strings, got an integer"},
		{name: "truncated", in: mustHex(t, "82 a1 65 a2 65"), field: "e", msg: "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got SubscriptionRequest
			err := msgpack.Unmarshal(tt.in, &got)
			if tt.msg != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
					t.Fatalf("err = %#v (%v), want field %q with %q", fe, err, tt.field, tt.msg)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v (%v), want %#v", got, err, tt.want)
			}
		})
	}
}

// TestSubscriptionRequestMsgpackFilters: a decoded request validates like
// its JSON twin.
func TestSubscriptionRequestMsgpackFilters(t *testing.T) {
	doc := `{"e":"portos.resources.changed","r":[{"n":"orders","a":["created","updated"]}]}`
	var fromJSON, fromMsgpack SubscriptionRequest
	if err := json.Unmarshal([]byte(doc), &fromJSON); err != nil {
		t.Fatal(err)
	}
	b, err := msgpack.Marshal(RawJSON(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := msgpack.Unmarshal(b, &fromMsgpack); err != nil {
		t.Fatal(err)
	}
	c := DefaultCatalogue()
	f1, err1 := c.Filter(&fromJSON)
	f2, err2 := c.Filter(&fromMsgpack)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(f1, f2) {
		t.Fatalf("JSON %v (%v), MessagePack %v (%v)", f1, err1, f2, err2)
	}
}

func BenchmarkRawJSONEncodeMsgpack(b *testing.B) {
	doc := RawJSON(`{"u":{"u":"alice@example.com","d":"POS-042","f":"checkout"},"n":"tickets","a":2,"i":{"i":"T-100234","n":"Table 12","v":17},"r":[{"id":"T-100234","table":12,"guests":4,"status":"open","total":87.5,"currency":"EUR","lines":[{"sku":"BEER-05","qty":3,"price":4.5},{"sku":"PIZZA-M","qty":2,"price":12.9}],"notes":null,"paid":false}]}`)
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := enc.Encode(doc); err != nil {
			b.Fatal(err)
		}
	}
}
