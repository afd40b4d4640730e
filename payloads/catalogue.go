package payloads

import (
	"fmt"
	"sort"
	"strings"
)

// The events known by default.
const (
	EventResourcesChanged = "portos.resources.changed"
	EventLicenceActivated = "portos.licence.activated"
)

// Catalogue is the set of events the hub accepts from publishers and clients.
// Resource events carry a ResourceChangedPayload and can be filtered by resource
// and action; other events can only be subscribed to as a whole.
// A Catalogue is immutable after construction and safe for concurrent use.
type Catalogue struct {
	events map[string]bool // name → is a resource event
	names  string          // for error messages
}

// DefaultCatalogue knows portos.resources.changed (a resource event) and
// portos.licence.activated.
func DefaultCatalogue() *Catalogue {
	c, _ := NewCatalogue([]string{EventResourcesChanged, EventLicenceActivated}, []string{EventResourcesChanged})
	return c
}

// NewCatalogue builds a catalogue of events; resourceEvents names those of them
// whose payload is a ResourceChangedPayload.
func NewCatalogue(events, resourceEvents []string) (*Catalogue, error) {
	c := &Catalogue{events: make(map[string]bool, len(events))}
	for _, e := range events {
		if err := ValidName(e); err != nil {
			return nil, fmt.Errorf("event %q: %w", e, err)
		}
		c.events[e] = false
	}
	for _, e := range resourceEvents {
		if _, ok := c.events[e]; !ok {
			return nil, fmt.Errorf("resource event %q is not in the event list", e)
		}
		c.events[e] = true
	}
	if len(c.events) == 0 {
		return nil, fmt.Errorf("the event catalogue is empty")
	}
	names := make([]string, 0, len(c.events))
	for e := range c.events {
		names = append(names, e)
	}
	sort.Strings(names)
	c.names = strings.Join(names, ", ")
	return c, nil
}

// Known reports whether event is in the catalogue.
func (c *Catalogue) Known(event string) bool {
	_, ok := c.events[event]
	return ok
}

// IsResourceEvent reports whether event carries a ResourceChangedPayload.
func (c *Catalogue) IsResourceEvent(event string) bool { return c.events[event] }

// Events returns the known event names, sorted and comma-separated.
func (c *Catalogue) Events() string { return c.names }

func (c *Catalogue) unknown(event string) error {
	return fmt.Errorf("unknown event %q (known: %s)", event, c.names)
}

// MaxNameLength bounds event and resource names.
const MaxNameLength = 128

// ValidName checks an event, resource, site or user name: 1-MaxNameLength
// printable ASCII characters without spaces.
func ValidName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > MaxNameLength:
		return fmt.Errorf("longer than %d bytes", MaxNameLength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("must be printable ASCII without spaces")
		}
	}
	return nil
}
