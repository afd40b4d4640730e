package payloads

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// FieldError says which field of a publisher's or client's input is wrong.
// Field is a path such as "e", "p.a" or "[2].p.a" for an element of a batch.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// prefixed returns err with its field path put under prefix.
func prefixed(prefix string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := prefix
	switch {
	case fe.Field == "":
	case fe.Field[0] == '[':
		field += fe.Field
	default:
		field += "." + fe.Field
	}
	return &FieldError{Field: field, Msg: fe.Msg}
}

// ParseNotifications decodes and validates a publish body: one notification
// object or a JSON array of them. Either all are valid or none is returned, so a
// bad batch loses nothing silently. Notifications without "ca" get now.
func (c *Catalogue) ParseNotifications(body []byte, maxBatch int, now time.Time) ([]Notification, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fieldErr("", "empty body: want a notification object or an array of them")
	}
	if body[0] != '[' {
		n, err := c.parseNotification(body, now)
		if err != nil {
			return nil, err
		}
		return []Notification{n}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, fieldErr("", "invalid JSON array: %v", err)
	}
	if len(raws) == 0 {
		return nil, fieldErr("", "empty array: want at least one notification")
	}
	if maxBatch > 0 && len(raws) > maxBatch {
		return nil, fieldErr("", "batch of %d notifications exceeds the limit of %d", len(raws), maxBatch)
	}
	out := make([]Notification, len(raws))
	for i, raw := range raws {
		n, err := c.parseNotification(raw, now)
		if err != nil {
			return nil, prefixed("["+strconv.Itoa(i)+"]", err)
		}
		out[i] = n
	}
	return out, nil
}

// wireNotification keeps every field raw so each can be checked on its own and
// an error can name the field.
type wireNotification struct {
	E  json.RawMessage `json:"e"`
	S  json.RawMessage `json:"s"`
	R  json.RawMessage `json:"r"`
	CA json.RawMessage `json:"ca"`
	EA json.RawMessage `json:"ea"`
	P  json.RawMessage `json:"p"`
	// Route is not a Portos key: it tells the hub where the notification goes.
	Route json.RawMessage `json:"route"`
}

func (c *Catalogue) parseNotification(raw []byte, now time.Time) (Notification, error) {
	var n Notification
	var w wireNotification
	if err := strictUnmarshal(raw, &w); err != nil {
		return n, err
	}
	if isNull(w.E) {
		return n, fieldErr("e", "required")
	}
	if err := json.Unmarshal(w.E, &n.Event); err != nil {
		return n, fieldErr("e", "must be a string")
	}
	if !c.Known(n.Event) {
		return n, &FieldError{Field: "e", Msg: c.unknown(n.Event).Error()}
	}
	if !isNull(w.S) {
		n.Sender = new(Sender)
		if err := strictUnmarshal(w.S, n.Sender); err != nil {
			return n, prefixed("s", err)
		}
	}
	if !isNull(w.R) {
		n.Reference = new(string)
		if err := json.Unmarshal(w.R, n.Reference); err != nil {
			return n, fieldErr("r", "must be a string or null")
		}
	}
	n.CreatedAt = now.UTC()
	if !isNull(w.CA) {
		t, err := parseTime(w.CA)
		if err != nil {
			return n, fieldErr("ca", "%v", err)
		}
		n.CreatedAt = t
	}
	if !isNull(w.EA) {
		t, err := parseTime(w.EA)
		if err != nil {
			return n, fieldErr("ea", "%v", err)
		}
		n.ExpiresAt = &t
	}
	if !isNull(w.P) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, w.P); err != nil {
			return n, fieldErr("p", "invalid JSON: %v", err)
		}
		n.Payload = buf.Bytes()
	}
	if c.IsResourceEvent(n.Event) {
		if n.Payload == nil {
			return n, fieldErr("p", "required for %s", n.Event)
		}
		var p ResourceChangedPayload
		if err := strictUnmarshal(n.Payload, &p); err != nil {
			return n, prefixed("p", err)
		}
		if err := ValidName(p.Name); err != nil {
			return n, fieldErr("p.n", "resource name %v", err)
		}
		if !p.Action.Valid() {
			return n, fieldErr("p.a", "must be 1 (created), 2 (updated) or 3 (deleted), got %d", p.Action)
		}
		n.Routing = Routing{Resource: p.Name, Action: p.Action}
	}
	if !isNull(w.Route) {
		var r Route
		if err := strictUnmarshal(w.Route, &r); err != nil {
			return n, prefixed("route", err)
		}
		if r.Site != "" {
			if err := ValidName(r.Site); err != nil {
				return n, fieldErr("route.site", "%v", err)
			}
		}
		if len(r.Users) > MaxRouteUsers {
			return n, fieldErr("route.users", "%d users exceed the limit of %d", len(r.Users), MaxRouteUsers)
		}
		for i, u := range r.Users {
			if err := ValidName(u); err != nil {
				return n, fieldErr("route.users["+strconv.Itoa(i)+"]", "%v", err)
			}
		}
		if r.Private && len(r.Users) == 0 {
			return n, fieldErr("route.private", "a private notification needs route.users: the users it is for")
		}
		n.Routing.Site, n.Routing.Users, n.Routing.Private = r.Site, r.Users, r.Private
	}
	return n, nil
}

// strictUnmarshal decodes a JSON object into v, rejecting unknown keys (a typo
// in a key would otherwise drop data silently) and naming the field that has
// the wrong type.
func strictUnmarshal(raw []byte, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return fieldErr("", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fieldErr(te.Field, "must be %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return fieldErr("", "invalid JSON: %v", err)
		}
		const unknown = "json: unknown field "
		if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
			name, _ := strconv.Unquote(msg[len(unknown):])
			return fieldErr(name, "unknown field")
		}
		return fieldErr("", "%v", err)
	}
	if dec.More() {
		return fieldErr("", "trailing data after the JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "uint8", "int64", "int", "uint64":
		return "an integer"
	case "slice":
		return "an array"
	case "struct", "ptr", "map":
		return "an object"
	}
	return "a " + goKind
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func parseTime(raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 date-time string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 date-time string, got %q", s)
	}
	return t.UTC(), nil
}
