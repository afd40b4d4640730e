package signalr

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// canonicalMessage keeps the fields m's type carries on the wire, with empty maps
// and slices as nil, so messages can be compared after a round trip.
func canonicalMessage(m Message) Message {
	c := Message{Type: m.Type}
	if m.Type.Sequenced() {
		if len(m.Headers) > 0 {
			c.Headers = m.Headers
		}
		c.InvocationID = m.InvocationID
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		c.Target = m.Target
		if len(m.Arguments) > 0 {
			c.Arguments = m.Arguments
		}
		if len(m.StreamIDs) > 0 {
			c.StreamIDs = m.StreamIDs
		}
	case TypeStreamItem:
		c.Item = m.Item
	case TypeCompletion:
		c.Error = m.Error
		if m.Error == "" && m.HasResult {
			c.HasResult, c.Result = true, m.Result
		}
	case TypeClose:
		c.Error, c.AllowReconnect = m.Error, m.AllowReconnect
	case TypeAck, TypeSequence:
		c.SequenceID = m.SequenceID
	}
	return c
}

// isKnownType reports whether t is one of the SignalR message types.
func isKnownType(t MessageType) bool { return t >= TypeInvocation && t <= TypeSequence }

// rawArgs builds incoming arguments from their encodings.
func rawArgs(vals ...string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = RawValue(v)
	}
	return out
}

// readMessages reads every whole message in buf.
func readMessages(t *testing.T, p Protocol, buf []byte, maxSize int) ([]Message, int) {
	t.Helper()
	var out []Message
	used := 0
	for {
		var m Message
		n, err := p.ReadMessage(buf[used:], maxSize, &m)
		if err != nil {
			t.Fatalf("read at %d: %v", used, err)
		}
		if n == 0 {
			return out, used
		}
		out = append(out, m)
		used += n
	}
}

// checkSplit feeds every prefix of stream (several messages) to p: only the
// messages that end within the prefix are read, and they equal want.
func checkSplit(t *testing.T, p Protocol, stream []byte, want []Message) {
	t.Helper()
	all, used := readMessages(t, p, stream, 1<<16)
	if used != len(stream) || len(all) != len(want) {
		t.Fatalf("whole stream: read %d messages using %d of %d bytes, want %d", len(all), used, len(stream), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(all[i], want[i]) {
			t.Fatalf("message %d = %+v, want %+v", i, all[i], want[i])
		}
	}
	ends := make([]int, 0, len(want))
	for i, pos := 0, 0; i < len(want); i++ {
		var m Message
		n, err := p.ReadMessage(stream[pos:], 1<<16, &m)
		if err != nil || n == 0 {
			t.Fatalf("message %d: n=%d err=%v", i, n, err)
		}
		pos += n
		ends = append(ends, pos)
	}
	for cut := 0; cut <= len(stream); cut++ {
		got, used := readMessages(t, p, stream[:cut], 1<<16)
		complete := 0
		for _, end := range ends {
			if end <= cut {
				complete++
			}
		}
		if len(got) != complete {
			t.Fatalf("cut %d: read %d messages, want %d", cut, len(got), complete)
		}
		if complete > 0 && used != ends[complete-1] {
			t.Fatalf("cut %d: used %d bytes, want %d", cut, used, ends[complete-1])
		}
	}
}

// checkRoundTrip writes m with p, reads it back and compares.
func checkRoundTrip(t *testing.T, p Protocol, m Message) {
	t.Helper()
	b, err := p.AppendMessage([]byte("prefix"), &m)
	if err != nil {
		t.Fatalf("append %+v: %v", m, err)
	}
	if string(b[:6]) != "prefix" {
		t.Fatalf("append overwrote dst: %q", b[:6])
	}
	var got Message
	n, err := p.ReadMessage(b[6:], 0, &got)
	if err != nil || n != len(b)-6 {
		t.Fatalf("read back %q: n=%d (of %d) err=%v", b[6:], n, len(b)-6, err)
	}
	if !reflect.DeepEqual(canonicalMessage(got), canonicalMessage(m)) {
		t.Fatalf("round trip of %+v\n gave %+v\n wire %q", canonicalMessage(m), canonicalMessage(got), b[6:])
	}
}

func TestJSONNameAndFormat(t *testing.T) {
	var p JSONProtocol
	if p.Name() != "json" || p.TransferFormat() != TextFormat {
		t.Fatalf("got %q %v", p.Name(), p.TransferFormat())
	}
}

func TestJSONReadMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string // one message without its separator
		want Message
		err  string // substring of the error, when one is expected
	}{
		{name: "JS invocation, target and arguments before type",
			in:   `{"target":"Add","arguments":[1,2],"invocationId":"0","type":1}`,
			want: Message{Type: TypeInvocation, InvocationID: "0", Target: "Add", Arguments: rawArgs("1", "2")}},
		{name: "fire and forget",
			in:   `{"target":"Fire","arguments":["1970-01-01T00:00:00.000Z",{"0":1,"1":2}],"type":1}`,
			want: Message{Type: TypeInvocation, Target: "Fire", Arguments: rawArgs(`"1970-01-01T00:00:00.000Z"`, `{"0":1,"1":2}`)}},
		{name: "no arguments",
			in:   `{"type":1,"target":"Ping","arguments":[]}`,
			want: Message{Type: TypeInvocation, Target: "Ping", Arguments: []any{}}},
		{name: "whitespace around values",
			in:   " {\n\"type\" : 1 , \"target\":\"a\", \"arguments\" : [ 1 , {\"x\" : 2} ] }\t",
			want: Message{Type: TypeInvocation, Target: "a", Arguments: rawArgs("1", `{"x" : 2}`)}},
		{name: "headers and stream ids",
			in:   `{"type":1,"headers":{"traceparent":"00-1"},"invocationId":"3","target":"Upload","arguments":[],"streamIds":["1","2"]}`,
			want: Message{Type: TypeInvocation, Headers: map[string]string{"traceparent": "00-1"}, InvocationID: "3", Target: "Upload", Arguments: []any{}, StreamIDs: []string{"1", "2"}}},
		{name: "unknown properties are skipped",
			in:   `{"type":1,"target":"a","arguments":[],"future":{"x":[1]}}`,
			want: Message{Type: TypeInvocation, Target: "a", Arguments: []any{}}},
		{name: "stream invocation",
			in:   `{"type":4,"invocationId":"1","target":"Counter","arguments":[10]}`,
			want: Message{Type: TypeStreamInvocation, InvocationID: "1", Target: "Counter", Arguments: rawArgs("10")}},
		{name: "stream item",
			in:   `{"type":2,"invocationId":"1","item":{"a":1}}`,
			want: Message{Type: TypeStreamItem, InvocationID: "1", Item: RawValue(`{"a":1}`)}},
		{name: "stream item null",
			in:   `{"type":2,"invocationId":"1","item":null}`,
			want: Message{Type: TypeStreamItem, InvocationID: "1", Item: RawValue("null")}},
		{name: "completion with result",
			in:   `{"type":3,"invocationId":"0","result":3}`,
			want: Message{Type: TypeCompletion, InvocationID: "0", Result: RawValue("3"), HasResult: true}},
		{name: "completion with null result",
			in:   `{"type":3,"invocationId":"0","result":null}`,
			want: Message{Type: TypeCompletion, InvocationID: "0", Result: RawValue("null"), HasResult: true}},
		{name: "completion with error",
			in:   `{"type":3,"invocationId":"0","error":"boom"}`,
			want: Message{Type: TypeCompletion, InvocationID: "0", Error: "boom"}},
		{name: "void completion",
			in:   `{"type":3,"invocationId":"0"}`,
			want: Message{Type: TypeCompletion, InvocationID: "0"}},
		{name: "cancel",
			in:   `{"type":5,"invocationId":"7"}`,
			want: Message{Type: TypeCancelInvocation, InvocationID: "7"}},
		{name: "ping", in: `{"type":6}`, want: Message{Type: TypePing}},
		{name: "close", in: `{"type":7}`, want: Message{Type: TypeClose}},
		{name: "close with error and reconnect",
			in:   `{"type":7,"error":"Connection closed with an error.","allowReconnect":true}`,
			want: Message{Type: TypeClose, Error: "Connection closed with an error.", AllowReconnect: true}},
		{name: "ack", in: `{"type":8,"sequenceId":2}`, want: Message{Type: TypeAck, SequenceID: 2}},
		{name: "sequence", in: `{"type":9,"sequenceId":1}`, want: Message{Type: TypeSequence, SequenceID: 1}},
		{name: "unknown type is returned, not fatal",
			in:   `{"type":42,"whatever":[1,2]}`,
			want: Message{Type: 42}},
		// Regression: 257 used to wrap around to 1 and read as an Invocation.
		{name: "type beyond a byte is unknown",
			in:   `{"type":257,"target":"a","arguments":[]}`,
			want: Message{Type: 0}},
		{name: "negative type is unknown", in: `{"type":-255}`, want: Message{Type: 0}},

		{name: "missing type", in: `{"target":"a","arguments":[]}`, err: "missing type"},
		{name: "type is a string", in: `{"type":"1"}`, err: "invalid hub message"},
		{name: "type is fractional", in: `{"type":1.5}`, err: "invalid hub message"},
		{name: "not an object", in: `[1]`, err: "invalid hub message"},
		{name: "not JSON", in: `{"type":1,`, err: "invalid hub message"},
		{name: "empty record", in: ``, err: "invalid hub message"},
		{name: "invocation without target", in: `{"type":1,"arguments":[]}`, err: "target and arguments"},
		{name: "invocation without arguments", in: `{"type":1,"target":"a"}`, err: "target and arguments"},
		{name: "invocation with null arguments", in: `{"type":1,"target":"a","arguments":null}`, err: "target and arguments"},
		{name: "arguments not an array", in: `{"type":1,"target":"a","arguments":{}}`, err: "invalid hub message"},
		{name: "target not a string", in: `{"type":1,"target":5,"arguments":[]}`, err: "invalid hub message"},
		{name: "headers not strings", in: `{"type":1,"target":"a","arguments":[],"headers":{"a":1}}`, err: "invalid hub message"},
		{name: "stream invocation without id", in: `{"type":4,"target":"a","arguments":[]}`, err: "needs an invocationId"},
		// Regression: a StreamItem without "item" was accepted and then
		// written back as `"item":}`.
		{name: "stream item without item", in: `{"type":2,"invocationId":"1"}`, err: "needs an item"},
		{name: "stream item without id", in: `{"type":2,"item":1}`, err: "needs an invocationId"},
		{name: "completion without id", in: `{"type":3,"result":1}`, err: "needs an invocationId"},
		{name: "completion with result and error", in: `{"type":3,"invocationId":"0","result":1,"error":"x"}`, err: "both result and error"},
		{name: "cancel without id", in: `{"type":5}`, err: "needs an invocationId"},
		{name: "ack without sequenceId", in: `{"type":8}`, err: "needs a sequenceId"},
		{name: "sequence id not a number", in: `{"type":9,"sequenceId":"1"}`, err: "invalid hub message"},
		{name: "allowReconnect not a bool", in: `{"type":7,"allowReconnect":1}`, err: "invalid hub message"},
	}
	var p JSONProtocol
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.in + "\x1e" + `{"type":6}` + "\x1e")
			var m Message
			n, err := p.ReadMessage(buf, 1<<16, &m)
			if n != len(tt.in)+1 {
				t.Fatalf("n = %d, want %d (err %v)", n, len(tt.in)+1, err)
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

func TestJSONReadMessageSizeLimit(t *testing.T) {
	var p JSONProtocol
	msg := `{"type":6}` // 10 bytes
	var m Message
	if n, err := p.ReadMessage([]byte(msg+"\x1e"), len(msg), &m); err != nil || n != len(msg)+1 {
		t.Fatalf("at maxSize: n=%d err=%v", n, err)
	}
	if _, err := p.ReadMessage([]byte(msg+"\x1e"), len(msg)-1, &m); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("over maxSize: err=%v", err)
	}
	// Without a separator in sight, more than maxSize bytes is already too
	// large; up to maxSize it is merely incomplete.
	if n, err := p.ReadMessage([]byte(msg), len(msg), &m); n != 0 || err != nil {
		t.Fatalf("incomplete at maxSize: n=%d err=%v", n, err)
	}
	if _, err := p.ReadMessage([]byte(msg+" "), len(msg), &m); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("incomplete over maxSize: err=%v", err)
	}
}

func TestJSONReadStreamAndSplit(t *testing.T) {
	stream := []byte(`{"type":6}` + "\x1e" +
		`{"target":"Add","arguments":[1,2],"invocationId":"0","type":1}` + "\x1e" +
		`{"type":3,"invocationId":"0","result":{"a":"\u001e?"}}` + "\x1e" + // an escaped 0x1E is not a separator
		`{"type":7}` + "\x1e")
	want := []Message{
		{Type: TypePing},
		{Type: TypeInvocation, InvocationID: "0", Target: "Add", Arguments: rawArgs("1", "2")},
		{Type: TypeCompletion, InvocationID: "0", Result: RawValue(`{"a":"\u001e?"}`), HasResult: true},
		{Type: TypeClose},
	}
	checkSplit(t, JSONProtocol{}, stream, want)
}

func TestJSONAppendMessage(t *testing.T) {
	type point struct {
		X int `json:"x"`
		Y int `json:"y,omitempty"`
	}
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"ping", Message{Type: TypePing}, `{"type":6}`},
		{"completion with result", Message{Type: TypeCompletion, InvocationID: "0", Result: 3, HasResult: true},
			`{"type":3,"invocationId":"0","result":3}`},
		{"completion with null result", Message{Type: TypeCompletion, InvocationID: "0", HasResult: true},
			`{"type":3,"invocationId":"0","result":null}`},
		{"void completion", Message{Type: TypeCompletion, InvocationID: "0"}, `{"type":3,"invocationId":"0"}`},
		// Regression: an empty id read from the wire was dropped on the way
		// out, and the message could no longer be read back.
		{"completion with empty id keeps it", Message{Type: TypeCompletion}, `{"type":3,"invocationId":""}`},
		{"error completion", Message{Type: TypeCompletion, InvocationID: "0", Error: "x"},
			`{"type":3,"invocationId":"0","error":"x"}`},
		{"server to client call", Message{Type: TypeInvocation, Target: "receiveMessage", Arguments: []any{"bob", "hi"}},
			`{"type":1,"target":"receiveMessage","arguments":["bob","hi"]}`},
		{"struct and raw arguments", Message{Type: TypeInvocation, Target: "t", Arguments: []any{point{X: 1}, RawValue(`[true]`), "<&>"}},
			`{"type":1,"target":"t","arguments":[{"x":1},[true],"<&>"]}`},
		{"stream ids", Message{Type: TypeStreamInvocation, InvocationID: "1", Target: "Up", Arguments: []any{}, StreamIDs: []string{"2"}},
			`{"type":4,"invocationId":"1","target":"Up","arguments":[],"streamIds":["2"]}`},
		{"headers on an invocation", Message{Type: TypeInvocation, Headers: map[string]string{"a": "b"}, Target: "t"},
			`{"type":1,"headers":{"a":"b"},"target":"t","arguments":[]}`},
		{"no headers on a ping", Message{Type: TypePing, Headers: map[string]string{"a": "b"}}, `{"type":6}`},
		{"stream item", Message{Type: TypeStreamItem, InvocationID: "1", Item: nil}, `{"type":2,"invocationId":"1","item":null}`},
		{"cancel", Message{Type: TypeCancelInvocation, InvocationID: "1"}, `{"type":5,"invocationId":"1"}`},
		{"close", Message{Type: TypeClose}, `{"type":7}`},
		{"close with reconnect", Message{Type: TypeClose, AllowReconnect: true}, `{"type":7,"allowReconnect":true}`},
		{"close with error", Message{Type: TypeClose, Error: "Connection closed with an error."},
			`{"type":7,"error":"Connection closed with an error."}`},
		{"ack", Message{Type: TypeAck, SequenceID: 2}, `{"type":8,"sequenceId":2}`},
		{"sequence", Message{Type: TypeSequence, SequenceID: 1}, `{"type":9,"sequenceId":1}`},
	}
	var p JSONProtocol
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.AppendMessage([]byte("x"), &tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if want := "x" + tt.want + "\x1e"; string(got) != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestJSONAppendMessageError(t *testing.T) {
	var p JSONProtocol
	dst := []byte("keep")
	got, err := p.AppendMessage(dst, &Message{Type: TypeInvocation, Target: "t", Arguments: []any{make(chan int)}})
	if err == nil || !strings.Contains(err.Error(), "argument 0 of t") {
		t.Fatalf("err = %v", err)
	}
	if string(got) != "keep" {
		t.Fatalf("dst = %q, want it unchanged", got)
	}
}

// roundTripMessages are messages of every type for the round-trip tests of
// both protocols; val gives a RawValue from its JSON text or the hex of its
// MessagePack encoding, whichever the protocol under test uses.
func roundTripMessages(val func(jsonText, msgpackHex string) RawValue) []Message {
	pick := val
	return []Message{
		{Type: TypeInvocation, Target: "OnEvent", Arguments: []any{pick(`{"e":"x"}`, "81 a1 65 a1 78")}},
		{Type: TypeInvocation, InvocationID: "0", Headers: map[string]string{"k": "v"}, Target: "Add", Arguments: []any{pick("1", "01"), pick("2", "02")}},
		{Type: TypeInvocation, Target: "NoArgs"},
		{Type: TypeStreamInvocation, InvocationID: "4", Target: "Up", Arguments: []any{pick("null", "c0")}, StreamIDs: []string{"5", "6"}},
		{Type: TypeStreamItem, InvocationID: "5", Item: pick(`[1,"a"]`, "92 01 a1 61")},
		{Type: TypeCompletion, InvocationID: "0", Result: pick("3", "03"), HasResult: true},
		{Type: TypeCompletion, InvocationID: "0", Result: pick("null", "c0"), HasResult: true},
		{Type: TypeCompletion, InvocationID: "0"},
		{Type: TypeCompletion, InvocationID: "0", Error: "boom"},
		{Type: TypeCancelInvocation, InvocationID: "9", Headers: map[string]string{"a": "b"}},
		{Type: TypePing},
		{Type: TypeClose},
		{Type: TypeClose, Error: "Connection closed with an error.", AllowReconnect: true},
		{Type: TypeClose, AllowReconnect: true},
		{Type: TypeAck, SequenceID: 36},
		{Type: TypeSequence, SequenceID: 1 << 40},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, m := range roundTripMessages(func(j, _ string) RawValue { return RawValue(j) }) {
		checkRoundTrip(t, JSONProtocol{}, m)
	}
}

func TestJSONUnmarshal(t *testing.T) {
	var p JSONProtocol
	var v struct {
		E string `json:"e"`
	}
	if err := p.Unmarshal(RawValue(`{"e":"x"}`), &v); err != nil || v.E != "x" {
		t.Fatalf("got %+v, %v", v, err)
	}
	if err := p.Unmarshal(RawValue(`{"e":1}`), &v); err == nil {
		t.Fatal("a number bound to a string field must fail")
	}
}

// jsonSeeds are messages for FuzzJSONReadMessage.
var jsonSeeds = []string{
	`{"target":"Add","arguments":[1,2],"invocationId":"0","type":1}` + "\x1e",
	`{"type":6}` + "\x1e" + `{"type":1,"target":"tick","arguments":[5]}` + "\x1e",
	`{"type":1,"headers":{"a":"b"},"target":"x","arguments":[],"streamIds":["1"]}` + "\x1e",
	`{"type":2,"invocationId":"1","item":null}` + "\x1e",
	`{"type":2,"invocationId":"1"}` + "\x1e",
	`{"type":3,"invocationId":"0","result":3}` + "\x1e",
	`{"type":3,"invocationId":"0","error":"x","result":1}` + "\x1e",
	`{"type":3,"invocationId":""}` + "\x1e",
	`{"type":4,"invocationId":"1","target":"c","arguments":[]}` + "\x1e",
	`{"type":5,"invocationId":"1"}` + "\x1e",
	`{"type":7,"error":"e","allowReconnect":true}` + "\x1e",
	`{"type":8,"sequenceId":2}` + "\x1e",
	`{"type":9,"sequenceId":-1}` + "\x1e",
	`{"type":257,"target":"a","arguments":[]}` + "\x1e",
	`{"type":42}` + "\x1e",
	`{"type":1,` + "\x1e",
	`{"type":6}`,
	"\x1e",
}

// FuzzJSONReadMessage reads arbitrary bytes with the JSON protocol: no panic,
// maxSize respected, and a message that reads back fine and is written again
// reads back equal.
func FuzzJSONReadMessage(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 16)
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxSize int) {
		var p JSONProtocol
		var m Message
		n, err := p.ReadMessage(buf, maxSize, &m)
		if n < 0 || n > len(buf) {
			t.Fatalf("n=%d for %d bytes", n, len(buf))
		}
		if n > 0 {
			if buf[n-1] != recordSeparator {
				t.Fatalf("message of n=%d does not end at a separator", n)
			}
			if maxSize > 0 && n-1 > maxSize {
				t.Fatalf("read %d bytes with maxSize %d", n-1, maxSize)
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
			t.Fatalf("re-read %q: n=%d err=%v", out, k, err)
		}
		if !reflect.DeepEqual(canonicalMessage(again), canonicalMessage(m)) {
			t.Fatalf("round trip changed the message\n in  %q\n out %q\n %+v\n %+v", buf[:n], out, canonicalMessage(m), canonicalMessage(again))
		}
	})
}
