package signalr

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"notifyhub/payloads"
)

func TestMessagePackNameAndFormat(t *testing.T) {
	var p MessagePackProtocol
	if p.Name() != "messagepack" || p.TransferFormat() != BinaryFormat {
		t.Fatalf("got %q %v", p.Name(), p.TransferFormat())
	}
}

func TestMessagePackAppendMessage(t *testing.T) {
	type point struct {
		X int `json:"x"`
		Y int `json:"y,omitempty"`
	}
	tests := []struct {
		name string
		m    Message
		want string // hex, length prefix included
	}{
		{"ping", Message{Type: TypePing}, "02 91 06"},
		{"completion value 3 for id 0", Message{Type: TypeCompletion, InvocationID: "0", Result: 3, HasResult: true},
			"07 95 03 80 a1 30 03 03"},
		// The protocol notes print 05 and 07 as the prefixes of these two and
		// 04 for Sequence 300, one byte short each: the JS client rejects those
		// frames as "Incomplete message." and accepts these.
		{"void completion", Message{Type: TypeCompletion, InvocationID: "0"}, "06 94 03 80 a1 30 02"},
		{"error completion", Message{Type: TypeCompletion, InvocationID: "0", Error: "x"}, "08 95 03 80 a1 30 01 a1 78"},
		{"nil result", Message{Type: TypeCompletion, InvocationID: "0", HasResult: true}, "07 95 03 80 a1 30 03 c0"},
		{"server to client call", Message{Type: TypeInvocation, Target: "msg", Arguments: []any{"hi"}},
			"0d 96 01 80 c0 a3 6d 73 67 91 a2 68 69 90"},
		{"client result call with id and stream ids", Message{Type: TypeStreamInvocation, InvocationID: "1", Target: "s", StreamIDs: []string{"2"}},
			"0b 96 04 80 a1 31 a1 73 90 91 a1 32"},
		{"headers", Message{Type: TypeCancelInvocation, InvocationID: "1", Headers: map[string]string{"k": "v"}},
			"09 93 05 81 a1 6b a1 76 a1 31"},
		{"stream item", Message{Type: TypeStreamItem, InvocationID: "1", Item: true}, "06 94 02 80 a1 31 c3"},
		{"close", Message{Type: TypeClose}, "04 93 07 c0 c2"},
		{"close with error and reconnect", Message{Type: TypeClose, Error: "x", AllowReconnect: true}, "05 93 07 a1 78 c3"},
		{"ack 36", Message{Type: TypeAck, SequenceID: 36}, "03 92 08 24"},
		{"sequence 300", Message{Type: TypeSequence, SequenceID: 300}, "05 92 09 cd 01 2c"},
		{"raw values pass through, empty is nil", Message{Type: TypeInvocation, Target: "t", Arguments: []any{RawValue{0x92, 0x01, 0x02}, RawValue(nil)}},
			"0c 96 01 80 c0 a1 74 92 92 01 02 c0 90"},
		{"integers are compact", Message{Type: TypeInvocation, Target: "t", Arguments: []any{int64(5), int32(-1), uint64(200), 70000}},
			"11 96 01 80 c0 a1 74 94 05 ff cc c8 ce 00 01 11 70 90"},
		{"structs use json tags when they have no msgpack tags", Message{Type: TypeInvocation, Target: "t", Arguments: []any{point{X: 1}}},
			"0c 96 01 80 c0 a1 74 91 81 a1 78 01 90"},
		{"time is the timestamp extension", Message{Type: TypeInvocation, Target: "t", Arguments: []any{time.UnixMilli(1500)}},
			"12 96 01 80 c0 a1 74 91 d7 ff 77 35 94 00 00 00 00 01 90"},
	}
	var p MessagePackProtocol
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.AppendMessage([]byte{0xee}, &tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte{0xee}, mustHex(t, tt.want)...); !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
		})
	}
}

// TestMessagePackAppendLongMessage checks the prefix move for every prefix
// size the encoder can produce short of 2 GiB.
func TestMessagePackAppendLongMessage(t *testing.T) {
	var p MessagePackProtocol
	for _, size := range []int{100, 126, 127, 128, 300, 16383, 16384, 70000, 1 << 21} {
		arg := strings.Repeat("a", size)
		m := Message{Type: TypeInvocation, Target: "t", Arguments: []any{arg}}
		out, err := p.AppendMessage([]byte("dst"), &m)
		if err != nil {
			t.Fatal(err)
		}
		var got Message
		n, err := p.ReadMessage(out[3:], 0, &got)
		if err != nil || n != len(out)-3 {
			t.Fatalf("size %d: n=%d of %d, err=%v", size, n, len(out)-3, err)
		}
		var s string
		if err := p.Unmarshal(got.Arguments[0].(RawValue), &s); err != nil || s != arg {
			t.Fatalf("size %d: argument came back as %d bytes, err=%v", size, len(s), err)
		}
	}
}

func TestMessagePackAppendMessageErrors(t *testing.T) {
	var p MessagePackProtocol
	for _, m := range []Message{
		{Type: TypeInvocation, Target: "t", Arguments: []any{make(chan int)}},
		{Type: TypeStreamItem, InvocationID: "1", Item: func() {}},
		{Type: TypeCompletion, InvocationID: "1", HasResult: true, Result: make(chan int)},
		{Type: 42},
	} {
		got, err := p.AppendMessage([]byte("keep"), &m)
		if err == nil || string(got) != "keep" {
			t.Errorf("type %d: got %q err=%v, want an error and dst unchanged", m.Type, got, err)
		}
	}
}

func TestMessagePackReadMessage(t *testing.T) {
	tests := []struct {
		name   string
		record string // hex of the message without its length prefix
		want   Message
		err    string
	}{
		{name: "JS invocation", record: "95 01 80 a1 30 a3 41 64 64 92 01 02",
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "Add", Arguments: []any{RawValue{0x01}, RawValue{0x02}}}},
		{name: "fire and forget has a nil id", record: "95 01 80 c0 a4 46 69 72 65 90",
			want: Message{Type: TypeInvocation, Target: "Fire", Arguments: []any{}}},
		{name: "empty id is no id", record: "95 01 80 a0 a4 46 69 72 65 90",
			want: Message{Type: TypeInvocation, Target: "Fire", Arguments: []any{}}},
		{name: "ASP.NET style with empty stream ids", record: "96 01 80 c0 a3 6d 73 67 91 a2 68 69 90",
			want: Message{Type: TypeInvocation, Target: "msg", Arguments: []any{RawValue{0xa2, 0x68, 0x69}}}},
		{name: "stream ids", record: "96 01 80 a1 30 a1 75 90 92 a1 31 d9 01 32",
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "u", Arguments: []any{}, StreamIDs: []string{"1", "2"}}},
		{name: "nil stream ids", record: "96 01 80 a1 30 a1 75 90 c0",
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "u", Arguments: []any{}}},
		{name: "extra elements are ignored", record: "97 01 80 a1 30 a1 75 90 90 a5 6c 61 74 65 72",
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "u", Arguments: []any{}}},
		{name: "headers", record: "95 01 82 a1 61 a1 62 a1 63 a0 c0 a1 74 90",
			want: Message{Type: TypeInvocation, Headers: map[string]string{"a": "b", "c": ""}, Target: "t", Arguments: []any{}}},
		{name: "nil headers", record: "95 01 c0 c0 a1 74 90",
			want: Message{Type: TypeInvocation, Target: "t", Arguments: []any{}}},
		{name: "nested argument kept whole", record: "95 01 80 c0 a1 74 92 82 a1 65 a1 78 a1 72 91 81 a1 6e a1 6f c3",
			want: Message{Type: TypeInvocation, Target: "t", Arguments: []any{
				RawValue(mustHex(t, "82 a1 65 a1 78 a1 72 91 81 a1 6e a1 6f")), RawValue{0xc3}}}},
		{name: "str8, str16 and str32 strings", record: "95 01 80 d9 01 30 da 00 03 41 64 64 91 db 00 00 00 01 78",
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "Add", Arguments: []any{RawValue(mustHex(t, "db 00 00 00 01 78"))}}},
		{name: "type as uint8", record: "91 cc 06", want: Message{Type: TypePing}},
		{name: "type as int8", record: "91 d0 06", want: Message{Type: TypePing}},
		{name: "type as uint16", record: "91 cd 00 06", want: Message{Type: TypePing}},
		{name: "type as int32", record: "91 d2 00 00 00 06", want: Message{Type: TypePing}},
		{name: "type as int64", record: "91 d3 00 00 00 00 00 00 00 06", want: Message{Type: TypePing}},
		{name: "type as uint64", record: "91 cf 00 00 00 00 00 00 00 06", want: Message{Type: TypePing}},
		{name: "stream invocation", record: "95 04 80 a1 31 a1 63 91 0a",
			want: Message{Type: TypeStreamInvocation, InvocationID: "1", Target: "c", Arguments: []any{RawValue{0x0a}}}},
		{name: "stream item", record: "94 02 80 a1 31 c0", want: Message{Type: TypeStreamItem, InvocationID: "1", Item: RawValue{0xc0}}},
		{name: "completion with value", record: "95 03 80 a1 30 03 03",
			want: Message{Type: TypeCompletion, InvocationID: "0", Result: RawValue{0x03}, HasResult: true}},
		{name: "completion with nil value", record: "95 03 80 a1 30 03 c0",
			want: Message{Type: TypeCompletion, InvocationID: "0", Result: RawValue{0xc0}, HasResult: true}},
		{name: "void completion", record: "94 03 80 a1 30 02", want: Message{Type: TypeCompletion, InvocationID: "0"}},
		{name: "error completion", record: "95 03 80 a1 30 01 a1 78", want: Message{Type: TypeCompletion, InvocationID: "0", Error: "x"}},
		{name: "cancel", record: "93 05 80 a1 37", want: Message{Type: TypeCancelInvocation, InvocationID: "7"}},
		{name: "ping", record: "91 06", want: Message{Type: TypePing}},
		{name: "ping with extra elements", record: "93 06 01 02", want: Message{Type: TypePing}},
		{name: "JS close", record: "92 07 c0", want: Message{Type: TypeClose}},
		{name: "ASP.NET close", record: "93 07 c0 c2", want: Message{Type: TypeClose}},
		{name: "close with error and reconnect", record: "93 07 a1 78 c3", want: Message{Type: TypeClose, Error: "x", AllowReconnect: true}},
		{name: "close with nil reconnect", record: "93 07 c0 c0", want: Message{Type: TypeClose}},
		{name: "ack 36", record: "92 08 24", want: Message{Type: TypeAck, SequenceID: 36}},
		{name: "sequence 300", record: "92 09 cd 01 2c", want: Message{Type: TypeSequence, SequenceID: 300}},
		{name: "negative sequence id", record: "92 09 ff", want: Message{Type: TypeSequence, SequenceID: -1}},
		{name: "unknown type is returned, not fatal", record: "93 2a a1 78 c3", want: Message{Type: 42}},
		{name: "type beyond a byte is unknown", record: "95 cd 01 01 80 a1 30 a1 74 90", want: Message{Type: 0}},
		{name: "negative type is unknown", record: "91 ff", want: Message{Type: 0}},

		{name: "empty record", record: "", err: "truncated"},
		{name: "not an array", record: "06", err: "message must be an array, got an integer"},
		{name: "map instead of array", record: "81 a4 74 79 70 65 06", err: "must be an array, got a map"},
		{name: "empty array", record: "90", err: "empty message array"},
		{name: "type is a string", record: "91 a1 36", err: "message type must be an integer, got a string"},
		{name: "type is a float", record: "91 cb 40 18 00 00 00 00 00 00", err: "must be an integer, got a float"},
		{name: "type is nil", record: "91 c0", err: "must be an integer, got nil"},
		{name: "type overflows int64", record: "91 cf ff ff ff ff ff ff ff ff", err: "out of range"},
		{name: "array shorter than its header", record: "93 06 01", err: "truncated"},
		{name: "string shorter than its header", record: "92 07 a5 78", err: "truncated"},
		{name: "huge array header", record: "dd ff ff ff ff 06", err: "truncated"},
		{name: "huge map header in an argument", record: "95 01 80 c0 a1 74 91 df ff ff ff ff", err: "truncated"},
		{name: "huge str32 header", record: "92 07 db ff ff ff ff", err: "truncated"},
		{name: "huge ext32 header", record: "92 07 c9 7f ff ff ff ff", err: "truncated"},
		{name: "invalid byte 0xc1", record: "95 01 80 c0 a1 74 91 c1", err: "invalid MessagePack byte 0xc1"},
		{name: "bytes after the array", record: "91 06 06", err: "1 bytes after the message array"},
		{name: "invocation too short", record: "94 01 80 c0 a1 74", err: "Invocation has 4 elements, want at least 5"},
		{name: "target nil", record: "95 01 80 c0 c0 90", err: "Invocation target must be a string, got nil"},
		{name: "target empty", record: "95 01 80 c0 a0 90", err: "Invocation target is empty"},
		{name: "target binary", record: "95 01 80 c0 c4 01 74 90", err: "target must be a string, got binary data"},
		{name: "id an integer", record: "95 01 80 01 a1 74 90", err: "invocation id must be a string, got an integer"},
		{name: "arguments nil", record: "95 01 80 c0 a1 74 c0", err: "arguments must be an array, got nil"},
		{name: "arguments a map", record: "95 01 80 c0 a1 74 80", err: "arguments must be an array, got a map"},
		{name: "headers an array", record: "95 01 90 c0 a1 74 90", err: "headers must be a map, got an array"},
		{name: "header value an integer", record: "95 01 81 a1 61 01 c0 a1 74 90", err: "header value must be a string, got an integer"},
		{name: "header name nil", record: "95 01 81 c0 a1 61 c0 a1 74 90", err: "header name must be a string, got nil"},
		{name: "stream ids not strings", record: "96 01 80 c0 a1 74 90 91 01", err: "stream ids must be a string, got an integer"},
		{name: "stream ids a string", record: "96 01 80 c0 a1 74 90 a1 31", err: "stream ids must be an array, got a string"},
		{name: "stream invocation without id", record: "95 04 80 c0 a1 63 90", err: "StreamInvocation needs an invocation id"},
		{name: "stream item without id", record: "94 02 80 c0 01", err: "StreamItem needs an invocation id"},
		{name: "stream item too short", record: "93 02 80 a1 31", err: "StreamItem has 3 elements, want at least 4"},
		{name: "completion with empty id", record: "94 03 80 a0 02", err: "Completion needs an invocation id"},
		{name: "completion too short", record: "93 03 80 a1 30", err: "Completion has 3 elements"},
		{name: "completion kind 3 without value", record: "94 03 80 a1 30 03", err: "want at least 5"},
		{name: "completion kind 1 without error", record: "94 03 80 a1 30 01", err: "want at least 5"},
		{name: "completion error not a string", record: "95 03 80 a1 30 01 03", err: "Completion error must be a string, got an integer"},
		{name: "completion error nil", record: "95 03 80 a1 30 01 c0", err: "Completion error must be a string, got nil"},
		{name: "completion kind 4", record: "95 03 80 a1 30 04 03", err: "result kind 4"},
		{name: "completion kind a string", record: "95 03 80 a1 30 a1 33 03", err: "result kind must be an integer"},
		{name: "cancel without id", record: "93 05 80 c0", err: "CancelInvocation needs an invocation id"},
		{name: "close too short", record: "91 07", err: "Close has 1 elements, want at least 2"},
		{name: "close error an integer", record: "92 07 01", err: "Close error must be a string"},
		{name: "close reconnect an integer", record: "93 07 c0 01", err: "allowReconnect must be a boolean, got an integer"},
		{name: "ack without id", record: "91 08", err: "Ack has 1 elements"},
		{name: "ack id a string", record: "92 08 a1 31", err: "Ack sequence id must be an integer, got a string"},
		{name: "sequence id a float", record: "92 09 ca 3f 80 00 00", err: "must be an integer, got a float"},
	}
	var p MessagePackProtocol
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			record := mustHex(t, tt.record)
			buf := appendVarint(nil, len(record))
			buf = append(buf, record...)
			frame := len(buf)
			buf = append(buf, 0x02, 0x91, 0x06) // a Ping after it must stay unread
			var m Message
			n, err := p.ReadMessage(buf, 1<<16, &m)
			if n != frame {
				t.Fatalf("n = %d, want %d (err %v)", n, frame, err)
			}
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrInvalidMessage containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", m, tt.want)
			}
		})
	}
}

func TestMessagePackReadSizeLimit(t *testing.T) {
	var p MessagePackProtocol
	var m Message
	// The JS invocation is 12 bytes: its prefix alone is enough to refuse it.
	if _, err := p.ReadMessage([]byte{0x0c}, 11, &m); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("over maxSize from the prefix alone: err=%v", err)
	}
	frame := mustHex(t, "0c 95 01 80 a1 30 a3 41 64 64 92 01 02")
	if n, err := p.ReadMessage(frame, 12, &m); err != nil || n != len(frame) {
		t.Fatalf("at maxSize: n=%d err=%v", n, err)
	}
	if n, err := p.ReadMessage(frame[:5], 12, &m); n != 0 || err != nil {
		t.Fatalf("truncated frame: n=%d err=%v", n, err)
	}
	if _, err := p.ReadMessage(mustHex(t, "80 80 80 80 10"), 0, &m); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("overflowing prefix: err=%v", err)
	}
}

func TestMessagePackReadStreamAndSplit(t *testing.T) {
	stream := mustHex(t, "02 91 06"+
		"0c 95 01 80 a1 30 a3 41 64 64 92 01 02"+
		"07 95 03 80 a1 30 03 03"+
		"03 92 08 24"+
		"03 92 07 c0")
	want := []Message{
		{Type: TypePing},
		{Type: TypeInvocation, InvocationID: "0", Target: "Add", Arguments: []any{RawValue{0x01}, RawValue{0x02}}},
		{Type: TypeCompletion, InvocationID: "0", Result: RawValue{0x03}, HasResult: true},
		{Type: TypeAck, SequenceID: 36},
		{Type: TypeClose},
	}
	checkSplit(t, MessagePackProtocol{}, stream, want)
}

// TestMessagePackRawValuesOwnTheirBytes: the connection reuses its read
// buffer, so values must not change when it is overwritten.
func TestMessagePackRawValuesOwnTheirBytes(t *testing.T) {
	var p MessagePackProtocol
	buf := mustHex(t, "0c 95 01 80 a1 30 a3 41 64 64 92 01 02")
	var m Message
	if _, err := p.ReadMessage(buf, 0, &m); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0xff
	}
	if !reflect.DeepEqual(m.Arguments, []any{RawValue{0x01}, RawValue{0x02}}) || m.Target != "Add" {
		t.Fatalf("message changed with the buffer: %+v", m)
	}
	// Appending to one value must not overwrite the next.
	a := m.Arguments[0].(RawValue)
	_ = append(a, 0x7f)
	if m.Arguments[1].(RawValue)[0] != 0x02 {
		t.Fatal("values share capacity")
	}
}

// TestMessagePackReadResetsMessage: fields of a previous message never leak
// into the next one read into the same Message.
func TestMessagePackReadResetsMessage(t *testing.T) {
	var p MessagePackProtocol
	m := Message{Type: TypeInvocation, Target: "old", InvocationID: "9", Error: "e", SequenceID: 5}
	if _, err := p.ReadMessage(mustHex(t, "02 91 06"), 0, &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, Message{Type: TypePing}) {
		t.Fatalf("got %+v", m)
	}
	if _, err := p.ReadMessage(mustHex(t, "01 90"), 0, &m); err == nil || !reflect.DeepEqual(m, Message{}) {
		t.Fatalf("after an error got %+v, %v", m, err)
	}
}

func TestMessagePackRoundTrip(t *testing.T) {
	msgs := roundTripMessages(func(_, h string) RawValue { return RawValue(mustHex(t, h)) })
	for _, m := range msgs {
		checkRoundTrip(t, MessagePackProtocol{}, m)
	}
	// Go values come back as their RawValue encoding.
	var p MessagePackProtocol
	out, err := p.AppendMessage(nil, &Message{Type: TypeStreamItem, InvocationID: "1", Item: map[string]any{"a": []int{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if _, err := p.ReadMessage(out, 0, &m); err != nil {
		t.Fatal(err)
	}
	var item map[string]any
	if err := p.Unmarshal(m.Item.(RawValue), &item); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(item, map[string]any{"a": []any{int64(1), int64(2)}}) {
		t.Fatalf("item = %#v", item)
	}
}

func TestMessagePackUnmarshal(t *testing.T) {
	var p MessagePackProtocol
	type tagged struct {
		Event string `msgpack:"e"`
		Count int    `json:"c"`
		Plain bool
	}
	var v tagged
	raw := RawValue(mustHex(t, "83 a1 65 a1 78 a1 63 cd 01 2c a5 50 6c 61 69 6e c3"))
	if err := p.Unmarshal(raw, &v); err != nil || v != (tagged{"x", 300, true}) {
		t.Fatalf("got %+v, %v", v, err)
	}
	var s string
	if err := p.Unmarshal(RawValue{0x05}, &s); err == nil {
		t.Fatal("an integer bound to a string must fail")
	}
	var ts time.Time
	if err := p.Unmarshal(RawValue(mustHex(t, "c7 0c ff 00 00 00 00 ff ff ff ff ff ff ff ff")), &ts); err != nil || !ts.Equal(time.UnixMilli(-1000)) {
		t.Fatalf("timestamp = %v, %v", ts, err)
	}
}

// TestMessagePackUnmarshalSubscriptionRequest binds what the JS client
// sends for Subscribe, and reports a wrong shape by field.
func TestMessagePackUnmarshalSubscriptionRequest(t *testing.T) {
	var p MessagePackProtocol
	js, err := msgpack.Marshal(map[string]any{"e": "portos.resources.changed", "r": []any{map[string]any{"n": "orders", "a": []string{"created"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var req payloads.SubscriptionRequest
	if err := p.Unmarshal(js, &req); err != nil {
		t.Fatal(err)
	}
	want := payloads.SubscriptionRequest{Event: "portos.resources.changed", Resources: []payloads.SubscriptionRequestResource{{Name: "orders", Actions: []string{"created"}}}}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v", req)
	}
	bad := RawValue(mustHex(t, "82 a1 65 a1 78 a1 72 91 81 a1 61 92 a7 63 72 65 61 74 65 64 05"))
	err = p.Unmarshal(bad, &req)
	var fe *payloads.FieldError
	if !errors.As(err, &fe) || fe.Field != "r[0].a[1]" {
		t.Fatalf("err = %v, want a FieldError for r[0].a[1]", err)
	}
}

// msgpackSeeds are frames for FuzzMessagePackReadMessage.
var msgpackSeeds = []string{
	"02 91 06",
	"07 95 03 80 a1 30 03 03",
	"06 94 03 80 a1 30 02",
	"08 95 03 80 a1 30 01 a1 78",
	"0c 95 01 80 a1 30 a3 41 64 64 92 01 02",
	"0a 95 01 80 c0 a4 46 69 72 65 90",
	"0d 96 01 80 c0 a3 6d 73 67 91 a2 68 69 90",
	"0f 96 01 81 a1 61 a1 62 a1 30 a1 75 90 91 a1 31",
	"06 94 02 80 a1 31 c0",
	"05 93 05 80 a1 37",
	"04 93 07 c0 c2",
	"05 93 07 a1 78 c3",
	"03 92 07 c0",
	"03 92 08 24",
	"05 92 09 cd 01 2c",
	"05 93 2a a1 78 c3",
	"02 91 06 03 92 08 24",
	"06 dd ff ff ff ff 06",
	"03 91 06 06",
	"80 01 91",
	"80 80 80 80 08",
	"",
}

// FuzzMessagePackReadMessage reads arbitrary bytes with the MessagePack
// protocol: no panic, maxSize respected, and a message that reads fine and
// is written again reads back equal.
func FuzzMessagePackReadMessage(f *testing.F) {
	for _, s := range msgpackSeeds {
		f.Add(mustHex(f, s), 0)
		f.Add(mustHex(f, s), 8)
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxSize int) {
		var p MessagePackProtocol
		var m Message
		n, err := p.ReadMessage(buf, maxSize, &m)
		if n < 0 || n > len(buf) {
			t.Fatalf("n=%d for %d bytes", n, len(buf))
		}
		if n > 0 {
			record, k, ferr := nextBinaryRecord(buf, 0)
			if ferr != nil || k != n {
				t.Fatalf("n=%d, but the frame spans %d (%v)", n, k, ferr)
			}
			if maxSize > 0 && len(record) > maxSize {
				t.Fatalf("read a %d-byte message with maxSize %d", len(record), maxSize)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) && !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n == 0 || !isKnownType(m.Type) {
			return
		}
		out, err := p.AppendMessage(nil, &m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		var again Message
		if k, err := p.ReadMessage(out, 0, &again); err != nil || k != len(out) {
			t.Fatalf("re-read % x: n=%d err=%v", out, k, err)
		}
		if !reflect.DeepEqual(canonicalMessage(again), canonicalMessage(m)) {
			t.Fatalf("round trip changed the message\n in  % x\n out % x\n %+v\n %+v", buf[:n], out, canonicalMessage(m), canonicalMessage(again))
		}
	})
}

// --- Benchmarks -------------------------------------------------------------

// benchNotification is a realistic portos.resources.changed notification.
func benchNotification(b *testing.B) *payloads.Notification {
	b.Helper()
	body := `{"e":"portos.resources.changed",
		"s":{"c":"Gb0y3mS4kT1jv6B0Zq2M7A","u":{"u":"alice@example.com","d":"POS-042","f":"checkout"}},
		"r":"7f6c1d2e-8a9b-4c3d-9e0f-112233445566",
		"ca":"2024-05-01T10:20:30.123Z","ea":"2024-05-01T11:20:30.123Z",
		"p":{"u":{"u":"alice@example.com","d":"POS-042","f":"checkout"},"n":"tickets","a":2,
			"i":{"i":"T-100234","n":"Table 12","v":17},
			"r":[{"id":"T-100234","table":12,"guests":4,"status":"open","total":87.5,"currency":"EUR",
				"lines":[{"sku":"BEER-05","qty":3,"price":4.5},{"sku":"PIZZA-M","qty":2,"price":12.9},{"sku":"WATER","qty":1,"price":2.5}],
				"waiter":{"id":7,"name":"Marta"},"notes":null,"paid":false}]}}`
	ns, err := payloads.DefaultCatalogue().ParseNotifications([]byte(body), 0, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return &ns[0]
}

// BenchmarkAppendOnEvent encodes one OnEvent invocation, which the hub does
// once per notification and protocol.
func BenchmarkAppendOnEvent(b *testing.B) {
	n := benchNotification(b)
	for _, p := range []Protocol{JSONProtocol{}, MessagePackProtocol{}} {
		b.Run(p.Name(), func(b *testing.B) {
			m := Message{Type: TypeInvocation, Target: "OnEvent", Arguments: []any{n}}
			buf, err := p.AppendMessage(nil, &m)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = p.AppendMessage(buf[:0], &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadInvocation reads a client's Subscribe invocation, and with
// /bind also binds its argument.
func BenchmarkReadInvocation(b *testing.B) {
	req := payloads.SubscriptionRequest{Event: payloads.EventResourcesChanged, Resources: []payloads.SubscriptionRequestResource{
		{Name: "tickets", Actions: []string{"created", "updated"}}, {Name: "devices"},
	}}
	for _, p := range []Protocol{JSONProtocol{}, MessagePackProtocol{}} {
		frame, err := p.AppendMessage(nil, &Message{Type: TypeInvocation, InvocationID: "3", Target: "Subscribe", Arguments: []any{req}})
		if err != nil {
			b.Fatal(err)
		}
		for _, bind := range []bool{false, true} {
			name := p.Name()
			if bind {
				name += "/bind"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					var m Message
					if n, err := p.ReadMessage(frame, 32<<10, &m); err != nil || n != len(frame) {
						b.Fatal(n, err)
					}
					if bind {
						var got payloads.SubscriptionRequest
						if err := p.Unmarshal(m.Arguments[0].(RawValue), &got); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
