package payloads

import (
	"encoding/json"
	"time"
)

// Notification is one event delivered to clients as the argument of OnEvent.
// Field names on the wire are the compact Portos keys; absent optional values
// are written as null, as the Portos (.NET) server does.
type Notification struct {
	Event     string     `json:"e" msgpack:"e"`
	Sender    *Sender    `json:"s" msgpack:"s"`
	Reference *string    `json:"r" msgpack:"r"`
	CreatedAt time.Time  `json:"ca" msgpack:"ca"`
	ExpiresAt *time.Time `json:"ea" msgpack:"ea"`
	Payload   RawJSON    `json:"p" msgpack:"p"`

	// Routing is what subscriptions match on besides the event and tenant. It
	// is derived while validating (resource and action from the payload, site
	// and users from the publisher's "route") and is not sent to clients.
	Routing Routing `json:"-" msgpack:"-"`
}

// Routing holds the parts of a notification that subscriptions filter on.
// Resource and Action are set for resource events only. Site and Users come
// from the publish body's "route" object: a notification with a site reaches
// tenant-wide subscriptions and those limited to its site; one with users
// also reaches subscriptions limited to any of those users. A Private one
// reaches only subscriptions limited to one of its users (private channels):
// neither tenant-wide nor site-wide subscriptions see it.
type Routing struct {
	Resource string
	Action   Action
	Site     string
	Users    []string
	Private  bool
}

// Route is the publish body's optional "route" object. It is routing data
// for the hub, not part of the notification clients receive.
type Route struct {
	Site    string   `json:"site"`
	Users   []string `json:"users"`
	Private bool     `json:"private"` // only for Users' own subscriptions; needs Users
}

// MaxRouteUsers bounds the users one notification may be routed to.
const MaxRouteUsers = 100

// Expired reports whether the notification must no longer be delivered at now.
func (n *Notification) Expired(now time.Time) bool {
	return n.ExpiresAt != nil && !now.Before(*n.ExpiresAt)
}

// Sender identifies who caused a notification.
type Sender struct {
	ConnectionID *string       `json:"c" msgpack:"c"`
	User         *UserIdentity `json:"u" msgpack:"u"`
}

// UserIdentity names a user, the device and the feature they acted from.
type UserIdentity struct {
	User    *string `json:"u" msgpack:"u"`
	Device  *string `json:"d" msgpack:"d"`
	Feature *string `json:"f" msgpack:"f"`
}

// ResourceChangedPayload is the payload of portos.resources.changed.
type ResourceChangedPayload struct {
	User      *UserIdentity     `json:"u" msgpack:"u"`
	Name      string            `json:"n" msgpack:"n"`
	Action    Action            `json:"a" msgpack:"a"`
	Info      *ResourceInfo     `json:"i" msgpack:"i"`
	Resources []json.RawMessage `json:"r" msgpack:"-"`
}

// ResourceInfo identifies the resource that changed and its new version.
type ResourceInfo struct {
	ID      *string `json:"i" msgpack:"i"`
	Name    *string `json:"n" msgpack:"n"`
	Version *int64  `json:"v" msgpack:"v"`
}

// RawJSON is a validated, compact JSON value kept as the publisher sent it, so
// that the JSON hub protocol writes it without re-encoding and the MessagePack
// protocol converts it value for value.
type RawJSON []byte

// MarshalJSON returns the raw value, or null when empty.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the raw value.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
