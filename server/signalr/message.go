package signalr

import "errors"

// MessageType is the "type" of a hub message.
type MessageType byte

// The hub message types of the SignalR hub protocol.
const (
	TypeInvocation       MessageType = 1
	TypeStreamItem       MessageType = 2
	TypeCompletion       MessageType = 3
	TypeStreamInvocation MessageType = 4
	TypeCancelInvocation MessageType = 5
	TypePing             MessageType = 6
	TypeClose            MessageType = 7
	TypeAck              MessageType = 8
	TypeSequence         MessageType = 9
)

// Sequenced reports whether messages of type t are numbered and replayed by
// stateful reconnect (the "HubInvocationMessage" types).
func (t MessageType) Sequenced() bool { return t >= TypeInvocation && t <= TypeCancelInvocation }

// Message is one hub message of any type; only the fields of its Type are used.
// Incoming Arguments, Item and Result hold RawValue in the protocol's encoding;
// outgoing ones hold Go values that the protocol encodes.
type Message struct {
	Type           MessageType
	Headers        map[string]string
	InvocationID   string // "" when absent (fire-and-forget invocation)
	Target         string
	Arguments      []any
	StreamIDs      []string
	Item           any
	Result         any
	HasResult      bool // a Completion with a result (which may be nil)
	Error          string
	AllowReconnect bool
	SequenceID     int64
}

// RawValue is one encoded argument, item or result as it arrived, in the
// encoding of the connection's protocol; bind it with Protocol.Unmarshal.
type RawValue []byte

// TransferFormat is the kind of frames a protocol needs from a transport.
type TransferFormat int

// The transfer formats of negotiate and the handshake.
const (
	TextFormat   TransferFormat = 1
	BinaryFormat TransferFormat = 2
)

func (f TransferFormat) String() string {
	if f == BinaryFormat {
		return "Binary"
	}
	return "Text"
}

// Protocol is a hub protocol: it frames and encodes hub messages.
// Implementations are stateless and safe for concurrent use.
type Protocol interface {
	// Name is the protocol name of the handshake ("json", "messagepack").
	Name() string
	// TransferFormat is the frame kind the protocol needs.
	TransferFormat() TransferFormat
	// ReadMessage decodes the first complete message in buf into m and returns
	// how many bytes it used. It returns 0 and a nil error when buf does not yet
	// hold a whole message, and ErrMessageTooLarge when the message is, or is
	// bound to be, longer than maxSize.
	ReadMessage(buf []byte, maxSize int, m *Message) (int, error)
	// AppendMessage appends m, framed, to dst.
	AppendMessage(dst []byte, m *Message) ([]byte, error)
	// Unmarshal binds one incoming argument to v.
	Unmarshal(arg RawValue, v any) error
}

// Errors of the wire layer.
var (
	ErrMessageTooLarge = errors.New("message exceeds the maximum message size")
	ErrInvalidMessage  = errors.New("invalid hub message")
)
