package payloads

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MessagePack encoding of the payload types.
//
// Notification, Sender, UserIdentity and ResourceInfo need no code of their
// own: their msgpack tags are the compact JSON keys, nil pointers encode as
// nil, and vmihailenco/msgpack writes time.Time as the timestamp extension
// (type -1) in its smallest form: 4 bytes (whole seconds up to 2106), 8 bytes
// (30-bit nanoseconds + 34-bit seconds) or 12 bytes (negative or later
// instants). The extension holds an instant without a zone, so every time
// goes out as UTC; the JS client decodes it to a Date (milliseconds) and .NET
// to a UTC DateTime. What needs code is the payload, which is kept as JSON
// text (RawJSON), and the typed errors for a malformed SubscriptionRequest.

// maxJSONDepth bounds nesting when a MessagePack value is turned into JSON,
// the same limit encoding/json applies, so hostile input cannot exhaust the
// stack.
const maxJSONDepth = 10000

// EncodeMsgpack implements msgpack.CustomEncoder: it writes the JSON value as
// the equivalent MessagePack value, so a MessagePack client sees what a JSON
// client sees. Objects become maps with string keys in the publisher's order,
// arrays arrays, strings strings, true/false booleans and null nil. Numbers
// written without fraction or exponent that fit an int64 or uint64 become
// integers in their smallest form, as the JS client and MessagePack-CSharp
// write them; every other number becomes a float64 (1.0 and 1e3 stay
// floats, so a .NET client binding a double gets one). An empty RawJSON is
// nil.
func (r RawJSON) EncodeMsgpack(enc *msgpack.Encoder) error {
	if len(r) == 0 {
		return enc.EncodeNil()
	}
	// Validating first lets the tokenizer below assume well-formed input.
	if !json.Valid(r) {
		return errors.New("payloads: encode RawJSON as MessagePack: not valid JSON")
	}
	tp := jsonTokenPool.Get().(*[]jsonToken)
	toks := tokenizeJSON(r, (*tp)[:0])
	err := emitMsgpack(enc, r, toks)
	if cap(toks) <= maxPooledTokens {
		*tp = toks
		jsonTokenPool.Put(tp)
	}
	if err != nil {
		return fmt.Errorf("payloads: encode RawJSON as MessagePack: %w", err)
	}
	return nil
}

// jsonToken is one value (or object key) of a JSON document, in document
// order. A MessagePack map is its length followed by key, value, key, value…
// and an array its length followed by the elements, which is exactly the
// JSON order once container lengths are known; so one pass finds the tokens
// and the lengths, and a second writes them out.
type jsonToken struct {
	kind       byte // '{', '[', '"', 'n' (null), 't', 'f', '0' (number)
	escaped    bool // a string with backslash escapes
	start, end int  // the token's bytes; strings without their quotes
	n          int  // containers: elements (arrays) or key/value pairs (objects)
}

// maxPooledTokens keeps one huge payload from pinning its token slice.
const maxPooledTokens = 4096

var jsonTokenPool = sync.Pool{New: func() any {
	s := make([]jsonToken, 0, 64)
	return &s
}}

// tokenizeJSON appends the tokens of src, which must be valid JSON.
func tokenizeJSON(src []byte, toks []jsonToken) []jsonToken {
	var stackBuf [32]int
	open := stackBuf[:0] // indices in toks of the containers being filled
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			i++
			continue
		case ',':
			toks[open[len(open)-1]].n++
			i++
			continue
		case '}', ']':
			open = open[:len(open)-1]
			i++
			continue
		}
		// A value or an object key starts: the first one makes its container
		// non-empty, each comma after it adds one.
		if len(open) > 0 {
			if t := &toks[open[len(open)-1]]; t.n == 0 {
				t.n = 1
			}
		}
		switch c {
		case '{', '[':
			toks = append(toks, jsonToken{kind: c})
			open = append(open, len(toks)-1)
			i++
		case '"':
			j, esc := i+1, false
			for src[j] != '"' {
				if src[j] == '\\' {
					esc = true
					j++ // the escaped byte cannot end the string
				}
				j++
			}
			toks = append(toks, jsonToken{kind: '"', escaped: esc, start: i + 1, end: j})
			i = j + 1
		case 't':
			toks = append(toks, jsonToken{kind: 't'})
			i += len("true")
		case 'f':
			toks = append(toks, jsonToken{kind: 'f'})
			i += len("false")
		case 'n':
			toks = append(toks, jsonToken{kind: 'n'})
			i += len("null")
		default:
			j := i
			for j < len(src) && isJSONNumberByte(src[j]) {
				j++
			}
			toks = append(toks, jsonToken{kind: '0', start: i, end: j})
			i = j
		}
	}
	return toks
}

func isJSONNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// emitMsgpack writes the tokens of src to enc.
func emitMsgpack(enc *msgpack.Encoder, src []byte, toks []jsonToken) error {
	var err error
	for _, t := range toks {
		switch t.kind {
		case '{':
			err = enc.EncodeMapLen(t.n)
		case '[':
			err = enc.EncodeArrayLen(t.n)
		case '"':
			err = encodeJSONString(enc, src[t.start-1:t.end+1], t.escaped)
		case 't':
			err = enc.EncodeBool(true)
		case 'f':
			err = enc.EncodeBool(false)
		case 'n':
			err = enc.EncodeNil()
		case '0':
			err = encodeJSONNumber(enc, src[t.start:t.end])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// encodeJSONString writes a JSON string (quoted) as a MessagePack str. The
// common case, plain UTF-8 without escapes, is written as it is, with no
// string allocated; escapes and invalid UTF-8 go through encoding/json, so
// the text is exactly what a JSON client decodes (U+FFFD for bad bytes).
func encodeJSONString(enc *msgpack.Encoder, quoted []byte, escaped bool) error {
	b := quoted[1 : len(quoted)-1]
	if escaped || !utf8.Valid(b) {
		var s string
		if err := json.Unmarshal(quoted, &s); err != nil {
			return fmt.Errorf("string %s: %w", quoted, err)
		}
		return enc.EncodeString(s)
	}
	// The Encoder's writer is always an io.ByteWriter (it wraps any other);
	// writing the header byte by byte keeps it off the heap, where a header
	// array passed to Write would escape.
	w := enc.Writer()
	bw, ok := w.(io.ByteWriter)
	if !ok {
		return enc.EncodeString(string(b))
	}
	if err := writeMsgpackStrHeader(bw, len(b)); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// writeMsgpackStrHeader writes the header of a MessagePack str of n bytes,
// in the same forms the Encoder uses (fixstr, str8, str16, str32).
func writeMsgpackStrHeader(w io.ByteWriter, n int) error {
	var hdr []byte
	switch {
	case n < 32:
		return w.WriteByte(msgpcode.FixedStrLow | byte(n))
	case n <= math.MaxUint8:
		hdr = []byte{msgpcode.Str8, byte(n)}
	case n <= math.MaxUint16:
		hdr = []byte{msgpcode.Str16, byte(n >> 8), byte(n)}
	default:
		hdr = []byte{msgpcode.Str32, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	for _, c := range hdr {
		if err := w.WriteByte(c); err != nil {
			return err
		}
	}
	return nil
}

// encodeJSONNumber writes a JSON number: an integer literal that fits int64
// or uint64 as an integer, anything else as a float64. Out-of-range values
// become ±Inf or 0, what a JS client's JSON.parse yields for them.
func encodeJSONNumber(enc *msgpack.Encoder, b []byte) error {
	integer := true
	for _, c := range b {
		if c == '.' || c == 'e' || c == 'E' {
			integer = false
			break
		}
	}
	if integer {
		if b[0] == '-' {
			if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
				return enc.EncodeInt(v)
			}
		} else if v, err := strconv.ParseUint(string(b), 10, 64); err == nil {
			return enc.EncodeUint(v)
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("number %s: %w", b, err)
	}
	return enc.EncodeFloat64(f)
}

// DecodeMsgpack implements msgpack.CustomDecoder: it turns a MessagePack
// value into compact JSON, the reverse of EncodeMsgpack, so a Notification
// read from the MessagePack protocol (the Go test client) carries the same
// payload. Map keys must be strings or integers (integers become their
// decimal text), binary data becomes a base64 string and timestamps RFC 3339
// strings in UTC, as encoding/json would write []byte and time.Time; NaN,
// infinities and other extension types have no JSON form and are errors. Nil
// gives an empty RawJSON (absent payload).
func (r *RawJSON) DecodeMsgpack(dec *msgpack.Decoder) error {
	c, err := dec.PeekCode()
	if err != nil {
		return fmt.Errorf("payloads: decode RawJSON from MessagePack: %w", err)
	}
	if c == msgpcode.Nil {
		*r = nil
		return dec.DecodeNil()
	}
	out, err := appendJSONFromMsgpack((*r)[:0], dec, 0)
	if err != nil {
		return fmt.Errorf("payloads: decode RawJSON from MessagePack: %w", err)
	}
	*r = out
	return nil
}

// appendJSONFromMsgpack appends the next MessagePack value as JSON.
func appendJSONFromMsgpack(dst []byte, dec *msgpack.Decoder, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	c, err := dec.PeekCode()
	if err != nil {
		return dst, err
	}
	switch {
	case c == msgpcode.Nil:
		return append(dst, "null"...), dec.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		b, err := dec.DecodeBool()
		return strconv.AppendBool(dst, b), err
	case c == msgpcode.Uint64:
		u, err := dec.DecodeUint64()
		return strconv.AppendUint(dst, u, 10), err
	case isMsgpackInt(c):
		n, err := dec.DecodeInt64()
		return strconv.AppendInt(dst, n, 10), err
	case c == msgpcode.Float || c == msgpcode.Double:
		f, err := dec.DecodeFloat64()
		if err != nil {
			return dst, err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("%v has no JSON form", f)
		}
		bits := 64
		if c == msgpcode.Float {
			bits = 32 // shortest text of the float32, not of its widened value
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		if err != nil {
			return dst, err
		}
		return appendJSONValue(dst, s)
	case msgpcode.IsBin(c):
		b, err := dec.DecodeBytes()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	case msgpcode.IsExt(c):
		t, err := dec.DecodeTime()
		if err != nil {
			return dst, fmt.Errorf("only the timestamp extension has a JSON form: %w", err)
		}
		return appendJSONValue(dst, t.UTC())
	case isMsgpackArray(c):
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONFromMsgpack(dst, dec, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case isMsgpackMap(c):
		n, err := dec.DecodeMapLen()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '{')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONKey(dst, dec); err != nil {
				return dst, err
			}
			dst = append(dst, ':')
			if dst, err = appendJSONFromMsgpack(dst, dec, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("unexpected MessagePack byte 0x%02x", c)
}

// appendJSONKey appends a map key as a JSON string; JSON has no other keys.
func appendJSONKey(dst []byte, dec *msgpack.Decoder) ([]byte, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return dst, err
	}
	switch {
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		if err != nil {
			return dst, err
		}
		return appendJSONValue(dst, s)
	case c == msgpcode.Uint64:
		u, err := dec.DecodeUint64()
		return append(strconv.AppendUint(append(dst, '"'), u, 10), '"'), err
	case isMsgpackInt(c):
		n, err := dec.DecodeInt64()
		return append(strconv.AppendInt(append(dst, '"'), n, 10), '"'), err
	}
	return dst, fmt.Errorf("map key must be a string or an integer, got %s", msgpackKind(c))
}

// appendJSONValue appends v encoded by encoding/json.
func appendJSONValue(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// DecodeMsgpack implements msgpack.CustomDecoder so that a request of the
// wrong shape fails with a FieldError naming the field, such as
// `e: must be a string, got an integer` or `r[0].a[1]: must be a string`,
// rather than with a decoder message about MessagePack codes. Keys are the
// compact ones (e, r, n, a); unknown keys are skipped, as with JSON. A nil
// or absent r leaves Resources nil (the whole event) while an empty array
// gives an empty, non-nil slice, so Filter can tell them apart.
func (r *SubscriptionRequest) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = SubscriptionRequest{}
	return decodeMsgpackObject(dec, "", func(key string) error {
		switch key {
		case "e":
			s, err := decodeMsgpackString(dec, "e")
			r.Event = s
			return err
		case "r":
			n, err := decodeMsgpackArrayLen(dec, "r")
			if err != nil || n < 0 {
				return err
			}
			r.Resources = make([]SubscriptionRequestResource, n)
			for i := range r.Resources {
				if err := r.Resources[i].decodeMsgpack(dec, "r["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
			return nil
		}
		return dec.Skip()
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder with the same field errors
// as SubscriptionRequest.DecodeMsgpack.
func (r *SubscriptionRequestResource) DecodeMsgpack(dec *msgpack.Decoder) error {
	return r.decodeMsgpack(dec, "")
}

// decodeMsgpack decodes a resource whose errors are reported under field.
func (r *SubscriptionRequestResource) decodeMsgpack(dec *msgpack.Decoder, field string) error {
	*r = SubscriptionRequestResource{}
	prefix := field
	if prefix != "" {
		prefix += "."
	}
	return decodeMsgpackObject(dec, field, func(key string) error {
		switch key {
		case "n":
			s, err := decodeMsgpackString(dec, prefix+"n")
			r.Name = s
			return err
		case "a":
			n, err := decodeMsgpackArrayLen(dec, prefix+"a")
			if err != nil || n < 0 {
				return err
			}
			r.Actions = make([]string, n)
			for i := range r.Actions {
				if r.Actions[i], err = decodeMsgpackString(dec, prefix+"a["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
			return nil
		}
		return dec.Skip()
	})
}

// decodeMsgpackObject reads a map with string keys and calls field for each
// key with the decoder positioned on its value. Nil is an empty object, as
// JSON null is for encoding/json.
func decodeMsgpackObject(dec *msgpack.Decoder, field string, value func(key string) error) error {
	c, err := dec.PeekCode()
	if err != nil {
		return msgpackFieldErr(field, err)
	}
	if !isMsgpackMap(c) && c != msgpcode.Nil {
		return fieldErr(field, "must be an object, got %s", msgpackKind(c))
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return msgpackFieldErr(field, err)
	}
	for range n {
		c, err := dec.PeekCode()
		if err != nil {
			return msgpackFieldErr(field, err)
		}
		if !msgpcode.IsString(c) {
			return fieldErr(field, "object keys must be strings, got %s", msgpackKind(c))
		}
		key, err := dec.DecodeString()
		if err != nil {
			return msgpackFieldErr(field, err)
		}
		if err := value(key); err != nil {
			return err
		}
	}
	return nil
}

// decodeMsgpackString reads a string; nil reads as "" like JSON null.
func decodeMsgpackString(dec *msgpack.Decoder, field string) (string, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return "", msgpackFieldErr(field, err)
	}
	if !msgpcode.IsString(c) && c != msgpcode.Nil {
		return "", fieldErr(field, "must be a string, got %s", msgpackKind(c))
	}
	s, err := dec.DecodeString()
	if err != nil {
		return "", msgpackFieldErr(field, err)
	}
	return s, nil
}

// decodeMsgpackArrayLen reads an array header; nil gives -1.
func decodeMsgpackArrayLen(dec *msgpack.Decoder, field string) (int, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return 0, msgpackFieldErr(field, err)
	}
	if !isMsgpackArray(c) && c != msgpcode.Nil {
		return 0, fieldErr(field, "must be an array, got %s", msgpackKind(c))
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return 0, msgpackFieldErr(field, err)
	}
	return n, nil
}

// msgpackFieldErr reports malformed MessagePack (not a wrong shape) at field.
func msgpackFieldErr(field string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr(field, "truncated MessagePack value")
	}
	return fieldErr(field, "invalid MessagePack: %v", err)
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

// msgpackKind names the kind of value a MessagePack code starts, in the words
// of the JSON errors ("an integer", "a string").
func msgpackKind(c byte) string {
	switch {
	case isMsgpackInt(c):
		return "an integer"
	case msgpcode.IsString(c):
		return "a string"
	case isMsgpackArray(c):
		return "an array"
	case isMsgpackMap(c):
		return "an object"
	case msgpcode.IsBin(c):
		return "binary data"
	case msgpcode.IsExt(c):
		return "an extension value"
	}
	switch c {
	case msgpcode.Nil:
		return "null"
	case msgpcode.True, msgpcode.False:
		return "a boolean"
	case msgpcode.Float, msgpcode.Double:
		return "a number"
	}
	return fmt.Sprintf("the invalid byte 0x%02x", c)
}

// Compile-time checks that the encoders are the ones msgpack will call.
var (
	_ msgpack.CustomEncoder = RawJSON(nil)
	_ msgpack.CustomDecoder = (*RawJSON)(nil)
	_ msgpack.CustomDecoder = (*SubscriptionRequest)(nil)
	_ msgpack.CustomDecoder = (*SubscriptionRequestResource)(nil)
)
