package payloads

import (
	"fmt"
	"strconv"
)

// SubscriptionRequest is the argument of the Subscribe and Unsubscribe hub
// methods: an event and, optionally, the resources (and their actions) of it.
// No Resources means every resource of the event; a resource without Actions
// means every action of that resource.
type SubscriptionRequest struct {
	Event     string                        `json:"e" msgpack:"e"`
	Resources []SubscriptionRequestResource `json:"r,omitempty" msgpack:"r,omitempty"`
}

// SubscriptionRequestResource names one resource and, optionally, its actions.
type SubscriptionRequestResource struct {
	Name    string   `json:"n" msgpack:"n"`
	Actions []string `json:"a,omitempty" msgpack:"a,omitempty"`
}

// Filter is a validated subscription request in the form the index uses.
// Site and User, when set, limit it to the notifications routed to that site
// or concerning that user (see Route); a filter without them is tenant-wide.
type Filter struct {
	Event     string
	Resources []ResourceFilter // empty: the whole event
	Site      string
	User      string
}

// ResourceFilter selects one resource; Actions empty means all of them.
type ResourceFilter struct {
	Name    string
	Actions []Action
}

// MaxResourcesPerRequest bounds the resources named in one request.
const MaxResourcesPerRequest = 256

// Filter validates req against the catalogue and returns its Filter.
func (c *Catalogue) Filter(req *SubscriptionRequest) (Filter, error) {
	f := Filter{Event: req.Event}
	if req.Event == "" {
		return f, fieldErr("e", "required: the event name to subscribe to")
	}
	if !c.Known(req.Event) {
		return f, &FieldError{Field: "e", Msg: c.unknown(req.Event).Error()}
	}
	if req.Resources == nil {
		return f, nil
	}
	if !c.IsResourceEvent(req.Event) {
		return f, fieldErr("r", "event %q has no resources to filter on; omit r", req.Event)
	}
	if len(req.Resources) == 0 {
		return f, fieldErr("r", "empty: omit r to subscribe to every resource")
	}
	if len(req.Resources) > MaxResourcesPerRequest {
		return f, fieldErr("r", "%d resources exceed the limit of %d per request", len(req.Resources), MaxResourcesPerRequest)
	}
	f.Resources = make([]ResourceFilter, len(req.Resources))
	for i, r := range req.Resources {
		field := "r[" + strconv.Itoa(i) + "]"
		if err := ValidName(r.Name); err != nil {
			return f, fieldErr(field+".n", "resource name %v", err)
		}
		rf := ResourceFilter{Name: r.Name}
		if r.Actions != nil && len(r.Actions) == 0 {
			return f, fieldErr(field+".a", "empty: omit a to subscribe to every action")
		}
		for j, name := range r.Actions {
			a, err := ParseAction(name)
			if err != nil {
				return f, fieldErr(field+".a["+strconv.Itoa(j)+"]", "%v", err)
			}
			rf.Actions = append(rf.Actions, a)
		}
		f.Resources[i] = rf
	}
	return f, nil
}

// String renders the filter for logs.
func (f Filter) String() string {
	s := f.Event
	if len(f.Resources) > 0 {
		s = fmt.Sprintf("%s %v", s, f.Resources)
	}
	if f.Site != "" {
		s += " site=" + f.Site
	}
	if f.User != "" {
		s += " user=" + f.User
	}
	return s
}
