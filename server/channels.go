package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/subscriptions"
)

// Hub methods of the main hub for channels (the Envoy model).
const (
	methodSubscribeChannel   = "SubscribeChannel"
	methodUnsubscribeChannel = "UnsubscribeChannel"
)

// channel is a named stream of one tenant's notifications:
//
//	<name>:<tenant>          public: every connection of the tenant may join
//	<name>:<tenant>#<user>   private: only that user's notifications, and only
//	                         with a subscription token
//
// <name> is an event of the catalogue (the whole event) or else a resource
// of HUB_CHANNEL_EVENT (e.g. "shipments": notifications whose p.n is
// "shipments"). Names and tenants cannot contain ':' or '#'.
type channel struct {
	Name, Tenant, User string
}

func (c channel) String() string {
	s := c.Name + ":" + c.Tenant
	if c.User != "" {
		s += "#" + c.User
	}
	return s
}

// Private reports whether the channel is limited to a user.
func (c channel) Private() bool { return c.User != "" }

// parseChannel parses "<name>:<tenant>[#<user>]".
func parseChannel(s string) (channel, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return channel{}, fmt.Errorf("channel %q: want <name>:<tenant> or <name>:<tenant>#<user>", s)
	}
	tenant, user, private := strings.Cut(rest, "#")
	c := channel{Name: name, Tenant: tenant, User: user}
	for part, v := range map[string]string{"name": c.Name, "tenant": c.Tenant} {
		if !validTenant(v) || strings.ContainsAny(v, ":#") {
			return channel{}, fmt.Errorf("channel %q: the %s must be 1-128 printable ASCII characters without spaces, '/', ':' or '#'", s, part)
		}
	}
	if private && !validTenant(c.User) {
		return channel{}, fmt.Errorf("channel %q: the user must be 1-128 printable ASCII characters without spaces or '/'", s)
	}
	return c, nil
}

// channels turns channels into subscription filters and checks their
// subscription tokens.
type channels struct {
	catalogue *payloads.Catalogue
	gate      eventGate
	event     string // HUB_CHANNEL_EVENT
	tokens    *hubTokens
	scopes    []scopeChannel // HUB_CHANNEL_SCOPES, in order
}

// scopeChannel grants the channel name to the tokens that hold scope.
type scopeChannel struct{ scope, name string }

func newChannels(cat *payloads.Catalogue, gate eventGate, event string, scopes []string, tokens *hubTokens) (*channels, error) {
	if !cat.IsResourceEvent(event) {
		return nil, fmt.Errorf("HUB_CHANNEL_EVENT %q is not one of HUB_RESOURCE_EVENTS", event)
	}
	if err := gate.check(event); err != nil {
		return nil, fmt.Errorf("HUB_CHANNEL_EVENT: %w", err)
	}
	cs := &channels{catalogue: cat, gate: gate, event: event, tokens: tokens}
	for _, pair := range scopes {
		scope, name, ok := strings.Cut(pair, "=")
		if !ok || scope == "" || !validTenant(name) || strings.ContainsAny(name, ":#") {
			return nil, fmt.Errorf("HUB_CHANNEL_SCOPES: %q: want scope=channel-name, e.g. shipments.read=shipments", pair)
		}
		if err := cs.gated(name); err != nil {
			return nil, fmt.Errorf("HUB_CHANNEL_SCOPES: %q: %w", pair, err)
		}
		cs.scopes = append(cs.scopes, scopeChannel{scope, name})
	}
	return cs, nil
}

// granted returns the channels a connection token of p joins at connect:
// for every channel name whose scope p holds, the tenant's public channel
// and p's own private one.
func (cs *channels) granted(p *Principal) []string {
	var out []string
	for _, sc := range cs.scopes {
		if !p.HasScope(sc.scope) {
			continue
		}
		for _, ch := range []channel{{sc.name, p.Tenant, ""}, {sc.name, p.Tenant, p.Subject}} {
			if ch.User == "" || validTenant(ch.User) {
				if s := ch.String(); !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// connectFilters returns the subscriptions of a connection token's
// channels. They were granted when the token was issued; the tenant is
// checked again.
func (cs *channels) connectFilters(p *Principal) ([]payloads.Filter, error) {
	var fs []payloads.Filter
	for _, name := range p.Channels {
		ch, err := parseChannel(name)
		if err != nil || cs.gated(ch.Name) != nil || ch.Tenant != p.Tenant || (ch.Private() && ch.User != p.Subject) {
			return nil, forbidden("the connection token names a channel it may not join")
		}
		fs = append(fs, cs.filter(ch))
	}
	return fs, nil
}

// gated refuses (403) a channel name that is a gated event (see
// eventGate): a channel would be a way around the site roles.
func (cs *channels) gated(name string) error {
	if !cs.catalogue.Known(name) {
		return nil
	}
	if err := cs.gate.check(name); err != nil {
		return forbidden("channel %q: %v", name, err)
	}
	return nil
}

// filter returns the subscription a channel stands for.
func (cs *channels) filter(c channel) payloads.Filter {
	if cs.catalogue.Known(c.Name) {
		return payloads.Filter{Event: c.Name, User: c.User}
	}
	return payloads.Filter{Event: cs.event, Resources: []payloads.ResourceFilter{{Name: c.Name}}, User: c.User}
}

// authorize checks that p may get a subscription token for c: c is of p's
// tenant and, if private, of p's user unless p holds adminScope.
func authorizeChannel(p *Principal, c channel, adminScope string) error {
	if c.Tenant != p.Tenant {
		return forbidden("channel %q belongs to another tenant than the access token's", c.String())
	}
	if c.Private() && c.User != p.Subject && !p.HasScope(adminScope) {
		return forbidden("channel %q is private to another user", c.String())
	}
	return nil
}

// invokeChannel serves SubscribeChannel(channel[, token]) and
// UnsubscribeChannel(channel). A public channel of the connection's tenant
// needs no token; a private one needs a subscription token issued for it
// to the connection's user. Unsubscribing needs no token.
func (h *mainHub) invokeChannel(c *signalr.Conn, name string, args []any) (any, error) {
	subscribe := name == methodSubscribeChannel
	fail := func(format string, a ...any) error {
		return fmt.Errorf("Failed to invoke '%s': %s", name, fmt.Sprintf(format, a...))
	}
	cl := c.UserData.(*client)
	maxArgs := 1
	if subscribe {
		maxArgs = 2
	}
	if len(args) < 1 || len(args) > maxArgs {
		if subscribe {
			return nil, fail("it takes the channel and, for a private channel, a subscription token; got %d arguments.", len(args))
		}
		return nil, fail("it takes 1 argument (the channel), got %d.", len(args))
	}
	strArg := func(i int) (string, bool) {
		raw, _ := args[i].(signalr.RawValue)
		var s string
		if isNullArg(raw) || c.Protocol().Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	name0, ok := strArg(0)
	if !ok {
		return nil, fail("the channel must be a string such as \"shipments:<tenant>\".")
	}
	ch, err := parseChannel(name0)
	if err != nil {
		return nil, fail("%v", err)
	}
	if err := h.channels.gated(ch.Name); err != nil {
		return nil, fail("%v.", err)
	}
	if ch.Tenant != cl.Tenant() {
		return nil, fail("channel %q belongs to another tenant than the connection's.", ch.String())
	}
	f := h.channels.filter(ch)
	if !subscribe {
		h.core.Unsubscribe(cl, f)
		return nil, nil
	}
	if ch.Private() {
		if len(args) < 2 {
			return nil, fail("channel %q is private: pass a subscription token from GET /events/subscription_token as the second argument.", ch.String())
		}
		raw, ok := strArg(1)
		if !ok {
			return nil, fail("the subscription token must be a string.")
		}
		claims, err := h.channels.tokens.verifySubscription(raw)
		if err != nil {
			return nil, fail("%v.", err)
		}
		if claims.Channel != ch.String() || claims.TenantID != cl.Tenant() || claims.Subject != cl.principal.Subject {
			return nil, fail("the subscription token was issued for another channel or user.")
		}
	}
	if _, err := h.core.Subscribe(cl, f); err != nil {
		if errors.Is(err, subscriptions.ErrTooManySubscriptions) {
			return nil, fail("%v", err)
		}
		return nil, fmt.Errorf("Failed to invoke '%s' due to an error on the server.", name)
	}
	return nil, nil
}
