package notify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"notifyhub/payloads"
)

// The backplane message format, version 1. One message carries one publish
// request: one batch of one tenant (the tenant is the channel's).
//
//	header        version byte (1), origin node id (8 bytes, big-endian),
//	              the origin's sequence number of the publish (8 bytes)
//	count         uvarint, then that many notifications:
//	  e           string
//	  flags       byte: which of the optional fields follow (see flag*)
//	  s.c         string           if flagSenderConn
//	  s.u.u/d/f   string each      if flagUserUser / flagUserDevice / flagUserFeature
//	  r           string           if flagReference
//	  ca          time
//	  ea          time             if flagExpires
//	  p           bytes            (the payload's JSON text, as accepted)
//	  routing     string resource, byte action, byte routing flags (see
//	              routePrivate), string site, uvarint n + n strings users
//
// A string or bytes is a uvarint length and the bytes; a time is a varint of
// Unix seconds, a uvarint of nanoseconds and a varint of the zone offset in
// seconds, so that every node writes the instant exactly as the publisher
// gave it.
//
// It is binary rather than JSON because decoding is what every receiving
// node pays for every notification: this format decodes by slicing (the
// payload is copied, never parsed), about ten times faster than the
// equivalent JSON (see BenchmarkWire). A receiver that meets a version it
// does not know drops the message, logs and counts it, so a rolling upgrade
// that changes the format is visible rather than fatal.
const (
	wireVersion   = 1
	wireHeaderLen = 17
)

// Bits of a notification's flags byte.
const (
	flagSender      = 1 << iota // Sender is not nil
	flagSenderConn              // Sender.ConnectionID is not nil
	flagUser                    // Sender.User is not nil
	flagUserUser                // Sender.User.User is not nil
	flagUserDevice              // Sender.User.Device is not nil
	flagUserFeature             // Sender.User.Feature is not nil
	flagReference               // Reference is not nil
	flagExpires                 // ExpiresAt is not nil
)

// Bits of a notification's routing flags byte.
const (
	routePrivate = 1 << iota // Routing.Private
)

// errWireVersion is wrapped by decode errors of messages in an unknown format.
var errWireVersion = errors.New("unsupported backplane wire version")

// wireHeader is what a receiver reads before deciding whether to decode.
type wireHeader struct {
	node, seq uint64
}

// encodeMessage encodes one publish.
func encodeMessage(h wireHeader, ns []payloads.Notification) []byte {
	size := wireHeaderLen + binary.MaxVarintLen64
	for i := range ns {
		size += 96 + len(ns[i].Event) + len(ns[i].Payload) + len(ns[i].Routing.Resource) + len(ns[i].Routing.Site)
	}
	b := make([]byte, wireHeaderLen, size)
	b[0] = wireVersion
	binary.BigEndian.PutUint64(b[1:9], h.node)
	binary.BigEndian.PutUint64(b[9:17], h.seq)
	b = binary.AppendUvarint(b, uint64(len(ns)))
	for i := range ns {
		b = appendNotification(b, &ns[i])
	}
	return b
}

func appendNotification(b []byte, n *payloads.Notification) []byte {
	b = appendString(b, n.Event)
	var flags byte
	s := n.Sender
	var u *payloads.UserIdentity
	if s != nil {
		flags |= flagSender
		if s.ConnectionID != nil {
			flags |= flagSenderConn
		}
		if u = s.User; u != nil {
			flags |= flagUser
			flags |= bit(u.User != nil, flagUserUser) | bit(u.Device != nil, flagUserDevice) | bit(u.Feature != nil, flagUserFeature)
		}
	}
	flags |= bit(n.Reference != nil, flagReference) | bit(n.ExpiresAt != nil, flagExpires)
	b = append(b, flags)
	if flags&flagSenderConn != 0 {
		b = appendString(b, *s.ConnectionID)
	}
	if u != nil {
		for _, p := range []*string{u.User, u.Device, u.Feature} {
			if p != nil {
				b = appendString(b, *p)
			}
		}
	}
	if n.Reference != nil {
		b = appendString(b, *n.Reference)
	}
	b = appendTime(b, n.CreatedAt)
	if n.ExpiresAt != nil {
		b = appendTime(b, *n.ExpiresAt)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Payload)))
	b = append(b, n.Payload...)
	r := &n.Routing
	b = appendString(b, r.Resource)
	b = append(b, byte(r.Action), bit(r.Private, routePrivate))
	b = appendString(b, r.Site)
	b = binary.AppendUvarint(b, uint64(len(r.Users)))
	for _, user := range r.Users {
		b = appendString(b, user)
	}
	return b
}

func bit(set bool, flag byte) byte {
	if set {
		return flag
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(offset))
}

// decodeHeader checks the version and returns the header of msg.
func decodeHeader(msg string) (wireHeader, error) {
	switch {
	case len(msg) == 0:
		return wireHeader{}, errors.New("empty backplane message")
	case msg[0] != wireVersion:
		return wireHeader{}, fmt.Errorf("%w %d (this node reads %d)", errWireVersion, msg[0], wireVersion)
	case len(msg) < wireHeaderLen:
		return wireHeader{}, fmt.Errorf("backplane message of %d bytes is shorter than its header", len(msg))
	}
	return wireHeader{node: be64(msg[1:9]), seq: be64(msg[9:17])}, nil
}

func be64(s string) uint64 {
	var v uint64
	for i := range 8 {
		v = v<<8 | uint64(s[i])
	}
	return v
}

// decodeNotifications decodes the body of a message whose header
// decodeHeader accepted. Strings share msg's memory; payloads are copied.
func decodeNotifications(msg string) ([]payloads.Notification, error) {
	r := wireReader{s: msg[wireHeaderLen:]}
	count := r.uvarint()
	// Every notification takes more than one byte, so a count beyond the
	// bytes left is corrupt; checking first keeps it from sizing an
	// allocation.
	if r.err == nil && (count == 0 || count > uint64(len(r.s))) {
		return nil, fmt.Errorf("backplane message: %d notifications in %d bytes", count, len(r.s))
	}
	ns := make([]payloads.Notification, 0, count)
	for i := uint64(0); i < count && r.err == nil; i++ {
		ns = append(ns, r.notification())
		if r.err == nil && ns[i].Event == "" {
			return nil, fmt.Errorf("backplane notification %d has no event", i)
		}
	}
	switch {
	case r.err != nil:
		return nil, fmt.Errorf("decode backplane message: %w", r.err)
	case len(r.s) > 0:
		return nil, fmt.Errorf("backplane message: %d bytes after the last notification", len(r.s))
	}
	return ns, nil
}

// wireReader consumes a message; the first error sticks and makes every
// later read return zero values.
type wireReader struct {
	s   string
	err error
}

var errTruncated = errors.New("truncated")

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.s = ""
}

func (r *wireReader) byte() byte {
	if len(r.s) == 0 {
		r.fail(errTruncated)
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

func (r *wireReader) uvarint() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	r.fail(errors.New("varint overflows 64 bits"))
	return 0
}

func (r *wireReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint writes
}

func (r *wireReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.fail(errTruncated)
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

func (r *wireReader) ptr(flags, flag byte) *string {
	if flags&flag == 0 {
		return nil
	}
	s := r.string()
	return &s
}

func (r *wireReader) time() time.Time {
	sec, nsec, offset := r.varint(), r.uvarint(), r.varint()
	if nsec >= 1e9 || offset <= -24*3600 || offset >= 24*3600 {
		r.fail(errors.New("invalid time"))
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if offset == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(offset)))
}

func (r *wireReader) notification() payloads.Notification {
	var n payloads.Notification
	n.Event = r.string()
	flags := r.byte()
	if flags&flagSender != 0 {
		n.Sender = &payloads.Sender{ConnectionID: r.ptr(flags, flagSenderConn)}
		if flags&flagUser != 0 {
			n.Sender.User = &payloads.UserIdentity{
				User:    r.ptr(flags, flagUserUser),
				Device:  r.ptr(flags, flagUserDevice),
				Feature: r.ptr(flags, flagUserFeature),
			}
		}
	}
	const userFields = flagUserUser | flagUserDevice | flagUserFeature
	if flags&flagSender == 0 && flags&(flagSenderConn|flagUser) != 0 || flags&flagUser == 0 && flags&userFields != 0 {
		r.fail(fmt.Errorf("inconsistent flags %08b", flags))
	}
	n.Reference = r.ptr(flags, flagReference)
	n.CreatedAt = r.time()
	if flags&flagExpires != 0 {
		t := r.time()
		n.ExpiresAt = &t
	}
	if p := r.string(); p != "" {
		n.Payload = payloads.RawJSON(p) // the one copy: RawJSON is a []byte
	}
	n.Routing.Resource = r.string()
	n.Routing.Action = payloads.Action(r.byte())
	if rf := r.byte(); rf&^routePrivate != 0 {
		r.fail(fmt.Errorf("unknown routing flags %08b", rf))
	} else {
		n.Routing.Private = rf&routePrivate != 0
	}
	n.Routing.Site = r.string()
	if users := r.uvarint(); users > 0 {
		if users > uint64(len(r.s)) {
			r.fail(errTruncated)
			return n
		}
		n.Routing.Users = make([]string, users)
		for i := range n.Routing.Users {
			n.Routing.Users[i] = r.string()
		}
	}
	return n
}
