package signalr

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MessagePackProtocol is the "messagepack" hub protocol: each message is one
// MessagePack array, prefixed with its VarInt length (see nextBinaryRecord).
//
// Outgoing arguments, items and results are encoded with
// github.com/vmihailenco/msgpack/v5, so types implementing
// msgpack.CustomEncoder or msgpack.Marshaler encode themselves. Structs become
// maps keyed by their msgpack tag, or by their json tag when they have none,
// so a struct looks the same to clients of either protocol; integers take
// their smallest form, as MessagePack-CSharp and the JS client write them;
// time.Time is the timestamp extension (-1). Incoming values are kept as
// RawValue and bound with Unmarshal, which reads the same tags.
type MessagePackProtocol struct{}

// msgpackStructTag is the fallback struct tag for fields without a msgpack tag.
const msgpackStructTag = "json"

// The result kinds of a MessagePack Completion (its 4th element).
const (
	completionError  = 1 // 5th element: the error string
	completionVoid   = 2 // no 5th element
	completionResult = 3 // 5th element: the result, which may be nil
)

// Name implements Protocol.
func (MessagePackProtocol) Name() string { return "messagepack" }

// TransferFormat implements Protocol.
func (MessagePackProtocol) TransferFormat() TransferFormat { return BinaryFormat }

// ---------------------------------------------------------------------------
// Writing

// msgpackEncoder is a pooled Encoder that appends to buf. vmihailenco's
// Encoder keeps no buffer of its own and writes straight through, so the bytes
// land in the caller's slice without a second copy.
type msgpackEncoder struct {
	buf []byte
	enc *msgpack.Encoder
}

// Write implements io.Writer; it cannot fail.
func (w *msgpackEncoder) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteByte implements io.ByteWriter, which spares the Encoder a wrapper.
func (w *msgpackEncoder) WriteByte(c byte) error {
	w.buf = append(w.buf, c)
	return nil
}

var msgpackEncoders = sync.Pool{New: func() any {
	w := new(msgpackEncoder)
	w.enc = msgpack.NewEncoder(w)
	w.enc.UseCompactInts(true)
	w.enc.SetCustomStructTag(msgpackStructTag)
	return w
}}

// AppendMessage implements Protocol. Messages are written the way ASP.NET
// Core writes them: Invocations always with 6 elements (an empty StreamIds
// array, a nil invocation id when there is none), Close always with 3.
func (MessagePackProtocol) AppendMessage(dst []byte, m *Message) ([]byte, error) {
	start := len(dst)
	w := msgpackEncoders.Get().(*msgpackEncoder)
	// Reserve the longest prefix: the payload length is known only once it
	// is written, and moving it down afterwards is cheaper than encoding into
	// a scratch buffer and copying it over.
	w.buf = append(dst, 0, 0, 0, 0, 0)
	err := w.message(m)
	out := w.buf
	w.buf = nil // do not keep the caller's memory alive in the pool
	msgpackEncoders.Put(w)
	if err != nil {
		return out[:start], err
	}
	size := len(out) - start - maxVarintLen
	if size > maxBinaryMessage {
		return out[:start], fmt.Errorf("encode messagepack message: %d bytes exceed the 2 GiB frame limit", size)
	}
	if k := varintLen(size); k < maxVarintLen {
		copy(out[start+k:], out[start+maxVarintLen:])
		out = out[:len(out)-(maxVarintLen-k)]
	}
	putVarint(out[start:], size)
	return out, nil
}

// message writes m's array. The fixed parts go through the Encoder too; its
// only error source is the writer, which cannot fail, so only value encoding
// can return an error.
func (w *msgpackEncoder) message(m *Message) error {
	e := w.enc
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		w.header(6, m.Type)
		w.headers(m.Headers)
		w.optString(m.InvocationID)
		_ = e.EncodeString(m.Target)
		_ = e.EncodeArrayLen(len(m.Arguments))
		for i, a := range m.Arguments {
			if err := w.value(a); err != nil {
				return fmt.Errorf("encode argument %d of %s: %w", i, m.Target, err)
			}
		}
		_ = e.EncodeArrayLen(len(m.StreamIDs))
		for _, id := range m.StreamIDs {
			_ = e.EncodeString(id)
		}
	case TypeStreamItem:
		w.header(4, m.Type)
		w.headers(m.Headers)
		w.optString(m.InvocationID)
		if err := w.value(m.Item); err != nil {
			return fmt.Errorf("encode stream item: %w", err)
		}
	case TypeCompletion:
		switch {
		case m.Error != "":
			w.header(5, m.Type)
			w.headers(m.Headers)
			w.optString(m.InvocationID)
			_ = e.EncodeInt(completionError)
			_ = e.EncodeString(m.Error)
		case m.HasResult:
			w.header(5, m.Type)
			w.headers(m.Headers)
			w.optString(m.InvocationID)
			_ = e.EncodeInt(completionResult)
			if err := w.value(m.Result); err != nil {
				return fmt.Errorf("encode completion result: %w", err)
			}
		default:
			w.header(4, m.Type)
			w.headers(m.Headers)
			w.optString(m.InvocationID)
			_ = e.EncodeInt(completionVoid)
		}
	case TypeCancelInvocation:
		w.header(3, m.Type)
		w.headers(m.Headers)
		w.optString(m.InvocationID)
	case TypePing:
		w.header(1, m.Type)
	case TypeClose:
		w.header(3, m.Type)
		w.optString(m.Error)
		_ = e.EncodeBool(m.AllowReconnect)
	case TypeAck, TypeSequence:
		w.header(2, m.Type)
		_ = e.EncodeInt(m.SequenceID)
	default:
		return fmt.Errorf("encode messagepack message: unknown message type %d", m.Type)
	}
	return nil
}

// header starts a message array of n elements with its type.
func (w *msgpackEncoder) header(n int, t MessageType) {
	_ = w.enc.EncodeArrayLen(n)
	_ = w.enc.EncodeInt(int64(t))
}

// headers writes the headers map; it is always present, empty as 0x80.
func (w *msgpackEncoder) headers(h map[string]string) {
	_ = w.enc.EncodeMapLen(len(h))
	for k, v := range h {
		_ = w.enc.EncodeString(k)
		_ = w.enc.EncodeString(v)
	}
}

// optString writes s, or nil when it is empty (an absent invocation id or
// Close error).
func (w *msgpackEncoder) optString(s string) {
	if s == "" {
		_ = w.enc.EncodeNil()
		return
	}
	_ = w.enc.EncodeString(s)
}

// value writes one argument, item or result. A RawValue is already
// MessagePack (an incoming value passed on) and is copied as it is; an empty
// one stands for nil.
func (w *msgpackEncoder) value(v any) error {
	if raw, ok := v.(RawValue); ok {
		if len(raw) == 0 {
			w.buf = append(w.buf, msgpcode.Nil)
		} else {
			w.buf = append(w.buf, raw...)
		}
		return nil
	}
	return w.enc.Encode(v)
}

// ---------------------------------------------------------------------------
// Reading

// msgpackReader is a pooled Decoder over a bytes.Reader. A bytes.Reader is an
// io.ByteScanner, so the Decoder reads from it directly without buffering
// ahead, and the reader's position is always the offset of the next value.
type msgpackReader struct {
	rec   []byte // the record being read
	owned []byte // a copy of rec that RawValues point into, made on first need
	kind  string // name of the message type, for errors
	r     bytes.Reader
	dec   *msgpack.Decoder
}

var msgpackReaders = sync.Pool{New: func() any {
	p := new(msgpackReader)
	p.dec = msgpack.NewDecoder(&p.r)
	p.dec.SetCustomStructTag(msgpackStructTag)
	p.dec.UseLooseInterfaceDecoding(true) // int64/uint64/float64 in `any`, like encoding/json's float64
	return p
}}

func getMsgpackReader(b []byte) *msgpackReader {
	p := msgpackReaders.Get().(*msgpackReader)
	p.rec = b
	p.r.Reset(b)
	return p
}

func putMsgpackReader(p *msgpackReader) {
	*p = msgpackReader{dec: p.dec} // drop every reference into caller memory
	p.r.Reset(nil)
	msgpackReaders.Put(p)
}

// Unmarshal implements Protocol. Errors of the value's own decoder (a
// msgpack.CustomDecoder such as payloads.SubscriptionRequest's) are returned
// unchanged, so callers can inspect them.
func (MessagePackProtocol) Unmarshal(arg RawValue, v any) error {
	p := getMsgpackReader(arg)
	defer putMsgpackReader(p)
	return p.dec.Decode(v)
}

// ReadMessage implements Protocol. Reading is tolerant where the clients
// differ (any integer and string width, optional trailing elements, nil
// headers) and strict where a message would be ambiguous (missing or wrongly
// typed elements, bytes after the array). Messages of unknown types are
// returned with only their Type set, for the caller to ignore; types that do
// not fit a MessageType come back as 0. Arguments, Item and Result are
// RawValues pointing into one copy of the record, not into buf.
func (MessagePackProtocol) ReadMessage(buf []byte, maxSize int, m *Message) (int, error) {
	record, n, err := nextBinaryRecord(buf, maxSize)
	if err != nil || n == 0 {
		return n, err
	}
	p := getMsgpackReader(record)
	err = p.message(m)
	putMsgpackReader(p)
	if err != nil {
		*m = Message{}
		return n, fmt.Errorf("%w: messagepack: %w", ErrInvalidMessage, err)
	}
	return n, nil
}

// message decodes the record into m.
func (p *msgpackReader) message(m *Message) error {
	// Check the whole structure first, without recursion, so that nothing
	// below can run past the record however the lengths inside lie, and so a
	// deeply nested argument cannot exhaust the stack.
	end, err := msgpackValueEnd(p.rec, 0)
	if err != nil {
		return err
	}
	if end != len(p.rec) {
		return fmt.Errorf("%d bytes after the message array", len(p.rec)-end)
	}
	p.kind = "message"
	count, err := p.arrayLen("", false)
	if err != nil {
		return err
	}
	if count == 0 {
		return fmt.Errorf("empty message array")
	}
	t, err := p.int("type")
	if err != nil {
		return err
	}
	*m = Message{Type: messageTypeOf(t)}
	p.kind = messageTypeName(m.Type)
	need := func(min int) error {
		if count < min {
			return fmt.Errorf("%s has %d elements, want at least %d", p.kind, count, min)
		}
		return nil
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		if err := need(5); err != nil {
			return err
		}
		if err := p.invocationHead(m, m.Type == TypeStreamInvocation); err != nil {
			return err
		}
		if m.Target, err = p.str("target", false); err != nil {
			return err
		}
		if m.Target == "" {
			return fmt.Errorf("%s target is empty", p.kind)
		}
		if m.Arguments, err = p.rawArray("arguments"); err != nil {
			return err
		}
		// Older clients send 5 elements; only a 6th is the StreamIds array.
		if count > 5 {
			if m.StreamIDs, err = p.strArray("stream ids"); err != nil {
				return err
			}
		}
	case TypeStreamItem:
		if err := need(4); err != nil {
			return err
		}
		if err := p.invocationHead(m, true); err != nil {
			return err
		}
		if m.Item, err = p.raw(); err != nil {
			return err
		}
	case TypeCompletion:
		if err := need(4); err != nil {
			return err
		}
		if err := p.invocationHead(m, true); err != nil {
			return err
		}
		kind, err := p.int("result kind")
		if err != nil {
			return err
		}
		switch kind {
		case completionError:
			if err := need(5); err != nil {
				return err
			}
			if m.Error, err = p.str("error", false); err != nil {
				return err
			}
		case completionVoid:
		case completionResult:
			if err := need(5); err != nil {
				return err
			}
			if m.Result, err = p.raw(); err != nil {
				return err
			}
			m.HasResult = true
		default:
			return fmt.Errorf("%s has result kind %d, want 1 (error), 2 (void) or 3 (result)", p.kind, kind)
		}
	case TypeCancelInvocation:
		if err := need(3); err != nil {
			return err
		}
		return p.invocationHead(m, true)
	case TypeClose:
		// The JS client sends [7, nil]; ASP.NET Core writes a 3rd element.
		if err := need(2); err != nil {
			return err
		}
		if m.Error, err = p.str("error", true); err != nil {
			return err
		}
		if count > 2 {
			if m.AllowReconnect, err = p.bool("allowReconnect"); err != nil {
				return err
			}
		}
	case TypeAck, TypeSequence:
		if err := need(2); err != nil {
			return err
		}
		if m.SequenceID, err = p.int("sequence id"); err != nil {
			return err
		}
	}
	// Elements past the ones read are ignored: the structure check above
	// already covered them, and later protocol versions may append some.
	return nil
}

// invocationHead reads the headers and the invocation id of types 1-5. An
// empty id is normalised to "none", as ASP.NET Core does; required says the
// type cannot go without one.
func (p *msgpackReader) invocationHead(m *Message, required bool) error {
	var err error
	if m.Headers, err = p.headers(); err != nil {
		return err
	}
	if m.InvocationID, err = p.str("invocation id", true); err != nil {
		return err
	}
	if required && m.InvocationID == "" {
		return fmt.Errorf("%s needs an invocation id", p.kind)
	}
	return nil
}

// messageTypeName names t for error messages.
func messageTypeName(t MessageType) string {
	switch t {
	case TypeInvocation:
		return "Invocation"
	case TypeStreamItem:
		return "StreamItem"
	case TypeCompletion:
		return "Completion"
	case TypeStreamInvocation:
		return "StreamInvocation"
	case TypeCancelInvocation:
		return "CancelInvocation"
	case TypePing:
		return "Ping"
	case TypeClose:
		return "Close"
	case TypeAck:
		return "Ack"
	case TypeSequence:
		return "Sequence"
	}
	return fmt.Sprintf("message type %d", t)
}

// peek returns the code of the next value. The structure was validated up
// front, so running out of bytes here would be a bug in this file.
func (p *msgpackReader) peek(field string) (byte, error) {
	c, err := p.dec.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", p.kind, field, err)
	}
	return c, nil
}

// wrongType describes an element of the wrong type.
func (p *msgpackReader) wrongType(field, want string, c byte) error {
	if field == "" {
		return fmt.Errorf("%s must be %s, got %s", p.kind, want, msgpackKind(c))
	}
	return fmt.Errorf("%s %s must be %s, got %s", p.kind, field, want, msgpackKind(c))
}

// arrayLen reads an array header; nil counts as empty when nilOK.
func (p *msgpackReader) arrayLen(field string, nilOK bool) (int, error) {
	c, err := p.peek(field)
	if err != nil {
		return 0, err
	}
	if !isMsgpackArray(c) && !(nilOK && c == msgpcode.Nil) {
		return 0, p.wrongType(field, "an array", c)
	}
	n, err := p.dec.DecodeArrayLen()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", p.kind, field, err)
	}
	return max(n, 0), nil // nil is -1
}

// int reads an integer of any width that fits an int64.
func (p *msgpackReader) int(field string) (int64, error) {
	c, err := p.peek(field)
	if err != nil {
		return 0, err
	}
	if !isMsgpackInt(c) {
		return 0, p.wrongType(field, "an integer", c)
	}
	if c == msgpcode.Uint64 {
		u, err := p.dec.DecodeUint64()
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", p.kind, field, err)
		}
		if u > math.MaxInt64 {
			return 0, fmt.Errorf("%s %s %d is out of range", p.kind, field, u)
		}
		return int64(u), nil
	}
	n, err := p.dec.DecodeInt64()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", p.kind, field, err)
	}
	return n, nil
}

// str reads a string of any width; nil reads as "" when nilOK. Binary data
// is refused, as ASP.NET Core does, although vmihailenco would accept it.
func (p *msgpackReader) str(field string, nilOK bool) (string, error) {
	c, err := p.peek(field)
	if err != nil {
		return "", err
	}
	if !msgpcode.IsString(c) && !(nilOK && c == msgpcode.Nil) {
		return "", p.wrongType(field, "a string", c)
	}
	s, err := p.dec.DecodeString()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", p.kind, field, err)
	}
	return s, nil
}

// bool reads a boolean; nil reads as false.
func (p *msgpackReader) bool(field string) (bool, error) {
	c, err := p.peek(field)
	if err != nil {
		return false, err
	}
	switch c {
	case msgpcode.True:
		return true, p.dec.Skip()
	case msgpcode.False, msgpcode.Nil:
		return false, p.dec.Skip()
	}
	return false, p.wrongType(field, "a boolean", c)
}

// headers reads the string→string headers map (nil or empty: no headers).
func (p *msgpackReader) headers() (map[string]string, error) {
	c, err := p.peek("headers")
	if err != nil {
		return nil, err
	}
	if !isMsgpackMap(c) && c != msgpcode.Nil {
		return nil, p.wrongType("headers", "a map", c)
	}
	n, err := p.dec.DecodeMapLen()
	if err != nil {
		return nil, fmt.Errorf("%s headers: %w", p.kind, err)
	}
	if n <= 0 {
		return nil, nil
	}
	h := make(map[string]string, n)
	for range n {
		k, err := p.str("header name", false)
		if err != nil {
			return nil, err
		}
		v, err := p.str("header value", false)
		if err != nil {
			return nil, err
		}
		h[k] = v
	}
	return h, nil
}

// strArray reads an array of strings (nil or empty: none).
func (p *msgpackReader) strArray(field string) ([]string, error) {
	n, err := p.arrayLen(field, true)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		if out[i], err = p.str(field, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rawArray reads an array whose elements are kept as RawValues.
func (p *msgpackReader) rawArray(field string) ([]any, error) {
	n, err := p.arrayLen(field, false)
	if err != nil {
		return nil, err
	}
	out := make([]any, n)
	for i := range out {
		if out[i], err = p.raw(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// raw returns the next value as it is encoded and moves past it.
func (p *msgpackReader) raw() (RawValue, error) {
	off := len(p.rec) - p.r.Len()
	end, err := msgpackValueEnd(p.rec, off)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.kind, err)
	}
	if _, err := p.r.Seek(int64(end), io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", p.kind, err)
	}
	// The caller may reuse buf for the next read, so values must not point
	// into it; one copy of the record serves all values of the message.
	if p.owned == nil {
		p.owned = bytes.Clone(p.rec)
	}
	return RawValue(p.owned[off:end:end]), nil
}

func isMsgpackInt(c byte) bool {
	return msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64)
}

func isMsgpackArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isMsgpackMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

// msgpackKind names the kind of value a code starts, for error messages.
func msgpackKind(c byte) string {
	switch {
	case isMsgpackInt(c):
		return "an integer"
	case msgpcode.IsString(c):
		return "a string"
	case isMsgpackArray(c):
		return "an array"
	case isMsgpackMap(c):
		return "a map"
	case msgpcode.IsBin(c):
		return "binary data"
	case msgpcode.IsExt(c):
		return "an extension value"
	}
	switch c {
	case msgpcode.Nil:
		return "nil"
	case msgpcode.True, msgpcode.False:
		return "a boolean"
	case msgpcode.Float, msgpcode.Double:
		return "a float"
	}
	return fmt.Sprintf("the invalid byte 0x%02x", c)
}

// errTruncated reports a MessagePack value that runs past its record.
var errTruncated = fmt.Errorf("truncated MessagePack value")

// msgpackValueEnd returns the offset just past the MessagePack value that
// starts at b[off]. It works iteratively (a count of values still to skip),
// so nesting depth costs no stack, and it bounds every declared length by the
// bytes that are left, so lying lengths fail fast instead of allocating.
func msgpackValueEnd(b []byte, off int) (int, error) {
	pending := 1 // values still to skip
	for pending > 0 {
		if off >= len(b) {
			return 0, errTruncated
		}
		c := b[off]
		off++
		pending--
		var size int     // bytes of payload to skip
		var items uint64 // nested values that follow
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		case c <= 0x8f: // fixmap
			items = 2 * uint64(c&0x0f)
		case c <= 0x9f: // fixarray
			items = uint64(c & 0x0f)
		case c <= 0xbf: // fixstr
			size = int(c & 0x1f)
		default:
			var lenBytes int // size of a big-endian length that follows
			var perLen uint64
			extra := 0 // bytes after the length (the ext type)
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc4, 0xd9: // bin8, str8
				lenBytes = 1
			case 0xc5, 0xda: // bin16, str16
				lenBytes = 2
			case 0xc6, 0xdb: // bin32, str32
				lenBytes = 4
			case 0xc7: // ext8
				lenBytes, extra = 1, 1
			case 0xc8: // ext16
				lenBytes, extra = 2, 1
			case 0xc9: // ext32
				lenBytes, extra = 4, 1
			case 0xcc, 0xd0: // uint8, int8
				size = 1
			case 0xcd, 0xd1: // uint16, int16
				size = 2
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				size = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				size = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+ type byte)
				size = 1<<(c-0xd4) + 1
			case 0xdc: // array16
				lenBytes, perLen = 2, 1
			case 0xdd: // array32
				lenBytes, perLen = 4, 1
			case 0xde: // map16
				lenBytes, perLen = 2, 2
			case 0xdf: // map32
				lenBytes, perLen = 4, 2
			default: // 0xc1 is never used
				return 0, fmt.Errorf("invalid MessagePack byte 0x%02x at offset %d", c, off-1)
			}
			if lenBytes > 0 {
				if len(b)-off < lenBytes {
					return 0, errTruncated
				}
				var n uint64
				switch lenBytes {
				case 1:
					n = uint64(b[off])
				case 2:
					n = uint64(binary.BigEndian.Uint16(b[off:]))
				default:
					n = uint64(binary.BigEndian.Uint32(b[off:]))
				}
				off += lenBytes
				if perLen > 0 {
					items = n * perLen
				} else {
					if n > uint64(len(b)-off) {
						return 0, errTruncated
					}
					size = int(n) + extra
				}
			}
		}
		if size > len(b)-off {
			return 0, errTruncated
		}
		off += size
		// Every pending value needs at least one more byte.
		if items > uint64(len(b)-off-pending) {
			return 0, errTruncated
		}
		pending += int(items)
	}
	return off, nil
}
