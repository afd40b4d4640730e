package notify

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"notifyhub/payloads"
)

// The backplane message format (version 1). One message carries one publish
// request, that is one batch of one tenant; the tenant is the channel's.
//
//	byte  0      wire version (1)
//	bytes 1-8    origin node id, big-endian
//	bytes 9-16   the origin's sequence number of the publish, big-endian
//	bytes 17-    JSON array of notifications: the compact keys clients see
//	             (e, s, r, ca, ea, p) plus "rt", the routing that the publish
//	             API derived while validating (resource, action, site, users)
//
// JSON keeps the payload as the publisher sent it (RawJSON is copied, never
// re-encoded) and is readable with redis-cli MONITOR. A receiver that meets a
// version it does not know drops the message, logs and counts it, so a
// rolling upgrade that changes the format is visible rather than fatal.
const (
	wireVersion   = 1
	wireHeaderLen = 17
)

// errWireVersion is wrapped by decode errors of messages in an unknown format.
var errWireVersion = errors.New("unsupported backplane wire version")

// wireNotification is a notification on the backplane: the client-visible
// fields plus its routing.
type wireNotification struct {
	*payloads.Notification
	Routing wireRouting `json:"rt"`
}

// wireRouting is payloads.Routing with short keys. The two are converted
// into each other, which compiles only while they have the same fields: a
// field added to Routing cannot be forgotten here.
type wireRouting struct {
	Resource string          `json:"n,omitempty"`
	Action   payloads.Action `json:"a,omitempty"`
	Site     string          `json:"s,omitempty"`
	Users    []string        `json:"u,omitempty"`
	Private  bool            `json:"p,omitempty"`
}

// wireHeader is what a receiver reads before deciding whether to decode.
type wireHeader struct {
	node, seq uint64
}

// encodeMessage encodes one publish of node.
func encodeMessage(h wireHeader, ns []payloads.Notification) ([]byte, error) {
	wire := make([]wireNotification, len(ns))
	for i := range ns {
		wire[i] = wireNotification{&ns[i], wireRouting(ns[i].Routing)}
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("encode %d notifications: %w", len(ns), err)
	}
	msg := make([]byte, wireHeaderLen, wireHeaderLen+len(body))
	msg[0] = wireVersion
	binary.BigEndian.PutUint64(msg[1:9], h.node)
	binary.BigEndian.PutUint64(msg[9:17], h.seq)
	return append(msg, body...), nil
}

// decodeHeader checks the version and returns the header of msg.
func decodeHeader(msg []byte) (wireHeader, error) {
	switch {
	case len(msg) == 0:
		return wireHeader{}, errors.New("empty backplane message")
	case msg[0] != wireVersion:
		return wireHeader{}, fmt.Errorf("%w %d (this node reads %d)", errWireVersion, msg[0], wireVersion)
	case len(msg) < wireHeaderLen:
		return wireHeader{}, fmt.Errorf("backplane message of %d bytes is shorter than its header", len(msg))
	}
	return wireHeader{node: binary.BigEndian.Uint64(msg[1:9]), seq: binary.BigEndian.Uint64(msg[9:17])}, nil
}

// decodeNotifications decodes the body of a message whose header
// decodeHeader accepted.
func decodeNotifications(msg []byte) ([]payloads.Notification, error) {
	var wire []wireNotification
	if err := json.Unmarshal(msg[wireHeaderLen:], &wire); err != nil {
		return nil, fmt.Errorf("decode backplane notifications: %w", err)
	}
	if len(wire) == 0 {
		return nil, errors.New("backplane message without notifications")
	}
	ns := make([]payloads.Notification, len(wire))
	for i, w := range wire {
		if w.Notification == nil || w.Event == "" {
			return nil, fmt.Errorf("backplane notification %d has no event", i)
		}
		ns[i] = *w.Notification
		ns[i].Routing = payloads.Routing(w.Routing)
		if string(ns[i].Payload) == "null" {
			ns[i].Payload = nil // RawJSON.UnmarshalJSON keeps null; the publish API leaves it empty
		}
	}
	return ns, nil
}
