package signalr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// JSONProtocol is the "json" hub protocol: one JSON object per message, each
// followed by 0x1E.
type JSONProtocol struct{}

// Name implements Protocol.
func (JSONProtocol) Name() string { return "json" }

// TransferFormat implements Protocol.
func (JSONProtocol) TransferFormat() TransferFormat { return TextFormat }

// Unmarshal implements Protocol.
func (JSONProtocol) Unmarshal(arg RawValue, v any) error { return json.Unmarshal(arg, v) }

// jsonMessage is the union of all message fields; pointers tell absent from zero.
type jsonMessage struct {
	Type           *int               `json:"type"`
	Headers        map[string]string  `json:"headers"`
	InvocationID   *string            `json:"invocationId"`
	Target         *string            `json:"target"`
	Arguments      *[]json.RawMessage `json:"arguments"`
	StreamIDs      []string           `json:"streamIds"`
	Item           json.RawMessage    `json:"item"`
	Result         json.RawMessage    `json:"result"`
	Error          *string            `json:"error"`
	AllowReconnect bool               `json:"allowReconnect"`
	SequenceID     *int64             `json:"sequenceId"`
}

// messageTypeOf maps a type number read from the wire to a MessageType.
// Numbers outside its range become 0, which no message uses, so they are
// ignored like other unknown types instead of wrapping around onto a known
// one (257 must not read as an Invocation).
func messageTypeOf(t int64) MessageType {
	if t < 0 || t > math.MaxUint8 {
		return 0
	}
	return MessageType(t)
}

// ReadMessage implements Protocol.
func (JSONProtocol) ReadMessage(buf []byte, maxSize int, m *Message) (int, error) {
	record, n, err := nextTextRecord(buf, maxSize)
	if err != nil || n == 0 {
		return n, err
	}
	var w jsonMessage
	if err := json.Unmarshal(record, &w); err != nil {
		return n, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if w.Type == nil {
		return n, fmt.Errorf("%w: missing type", ErrInvalidMessage)
	}
	*m = Message{Type: messageTypeOf(int64(*w.Type)), Headers: w.Headers}
	if w.InvocationID != nil {
		m.InvocationID = *w.InvocationID
	}
	needID := func() error {
		if w.InvocationID == nil {
			return fmt.Errorf("%w: type %d needs an invocationId", ErrInvalidMessage, *w.Type)
		}
		return nil
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		if m.Type == TypeStreamInvocation {
			if err := needID(); err != nil {
				return n, err
			}
		}
		if w.Target == nil || w.Arguments == nil {
			return n, fmt.Errorf("%w: invocation needs target and arguments", ErrInvalidMessage)
		}
		m.Target = *w.Target
		m.Arguments = make([]any, len(*w.Arguments))
		for i, a := range *w.Arguments {
			m.Arguments[i] = RawValue(a)
		}
		m.StreamIDs = w.StreamIDs
	case TypeStreamItem:
		if err := needID(); err != nil {
			return n, err
		}
		// The key must be present (its value may be null): without it there
		// is no item to pass on.
		if w.Item == nil {
			return n, fmt.Errorf("%w: stream item needs an item", ErrInvalidMessage)
		}
		m.Item = RawValue(w.Item)
	case TypeCompletion:
		if err := needID(); err != nil {
			return n, err
		}
		if w.Error != nil {
			m.Error = *w.Error
		}
		if w.Result != nil {
			if w.Error != nil {
				return n, fmt.Errorf("%w: completion has both result and error", ErrInvalidMessage)
			}
			m.Result, m.HasResult = RawValue(w.Result), true
		}
	case TypeCancelInvocation:
		if err := needID(); err != nil {
			return n, err
		}
	case TypeClose:
		if w.Error != nil {
			m.Error = *w.Error
		}
		m.AllowReconnect = w.AllowReconnect
	case TypeAck, TypeSequence:
		if w.SequenceID == nil {
			return n, fmt.Errorf("%w: type %d needs a sequenceId", ErrInvalidMessage, *w.Type)
		}
		m.SequenceID = *w.SequenceID
	}
	return n, nil
}

// AppendMessage implements Protocol. The fixed parts are written by hand;
// values go through encoding/json (or their MarshalJSON).
func (JSONProtocol) AppendMessage(dst []byte, m *Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"type":`...)
	dst = strconv.AppendInt(dst, int64(m.Type), 10)
	if len(m.Headers) > 0 && m.Type.Sequenced() {
		h, err := json.Marshal(m.Headers)
		if err != nil {
			return dst[:start], fmt.Errorf("encode headers: %w", err)
		}
		dst = append(append(dst, `,"headers":`...), h...)
	}
	// Types 2-5 require the id, so it is written even when empty: an
	// empty id read from the wire must not vanish on the way out.
	if m.InvocationID != "" || (m.Type >= TypeStreamItem && m.Type <= TypeCancelInvocation) {
		dst = append(dst, `,"invocationId":`...)
		dst = appendJSONString(dst, m.InvocationID)
	}
	var err error
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		dst = append(dst, `,"target":`...)
		dst = appendJSONString(dst, m.Target)
		dst = append(dst, `,"arguments":[`...)
		for i, a := range m.Arguments {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONValue(dst, a); err != nil {
				return dst[:start], fmt.Errorf("encode argument %d of %s: %w", i, m.Target, err)
			}
		}
		dst = append(dst, ']')
		if len(m.StreamIDs) > 0 {
			dst = append(dst, `,"streamIds":[`...)
			for i, id := range m.StreamIDs {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendJSONString(dst, id)
			}
			dst = append(dst, ']')
		}
	case TypeStreamItem:
		dst = append(dst, `,"item":`...)
		if dst, err = appendJSONValue(dst, m.Item); err != nil {
			return dst[:start], fmt.Errorf("encode stream item: %w", err)
		}
	case TypeCompletion:
		switch {
		case m.Error != "":
			dst = append(dst, `,"error":`...)
			dst = appendJSONString(dst, m.Error)
		case m.HasResult:
			dst = append(dst, `,"result":`...)
			if dst, err = appendJSONValue(dst, m.Result); err != nil {
				return dst[:start], fmt.Errorf("encode completion result: %w", err)
			}
		}
	case TypeClose:
		if m.Error != "" {
			dst = append(dst, `,"error":`...)
			dst = appendJSONString(dst, m.Error)
		}
		if m.AllowReconnect {
			dst = append(dst, `,"allowReconnect":true`...)
		}
	case TypeAck, TypeSequence:
		dst = append(dst, `,"sequenceId":`...)
		dst = strconv.AppendInt(dst, m.SequenceID, 10)
	}
	return append(dst, '}', recordSeparator), nil
}

// appendJSONValue appends v as JSON; a RawValue is taken as already encoded.
func appendJSONValue(dst []byte, v any) ([]byte, error) {
	if raw, ok := v.(RawValue); ok {
		return append(dst, raw...), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}
